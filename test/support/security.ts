/**
 * Test helpers for the security modules: a throwaway PKI directory with a CA and issued
 * certificates, and a tiny gRPC service whose one protected method reports the caller's identity.
 */
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NodeRole } from '../../common/security/identity';
import { authorize, peerIdentity } from '../../common/security/peer-identity';
import { type PemPair, createCa, issueCertificate } from '../../common/security/pki';
import { type CertFiles, writeCaFiles, writeIssuedFiles } from '../../common/security/pki-files';
import { toServiceError } from '../../common/wire/grpc-status';

export interface TestPki {
  readonly dir: string;
  readonly ca: PemPair;
  /** Issues role/id and writes it as `<name>.pem` (default `<role>-<id>`). */
  issue(role: string, id: string, name?: string): Promise<CertFiles & PemPair>;
  remove(): void;
}

export async function testPki(): Promise<TestPki> {
  const dir = mkdtempSync(join(tmpdir(), 'bora-pki-test-'));
  const ca = await createCa();
  writeCaFiles(dir, ca);
  return {
    dir,
    ca,
    async issue(role, id, name = `${role}-${id}`) {
      const pair = await issueCertificate(ca, { role, id });
      return { ...writeIssuedFiles(dir, name, pair), ...pair };
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

const passThrough = (b: Buffer): Buffer => b;
const method = (name: string): grpc.MethodDefinition<Buffer, Buffer> => ({
  path: `/bora.test.Probe/${name}`,
  requestStream: false,
  responseStream: false,
  requestSerialize: passThrough,
  requestDeserialize: passThrough,
  responseSerialize: passThrough,
  responseDeserialize: passThrough,
});

/**
 * Open: answers anyone TLS let in, with the peer identity if any ("none" otherwise).
 * Guarded: answers only callers whose certificate role is in `allowedRoles`.
 */
export const PROBE_SERVICE = { open: method('Open'), guarded: method('Guarded') };
export const ProbeClient = grpc.makeGenericClientConstructor(PROBE_SERVICE, 'Probe');

export interface ProbeServer {
  readonly port: number;
  readonly server: grpc.Server;
  close(): Promise<void>;
}

export async function startProbeServer(credentials: grpc.ServerCredentials, allowedRoles: readonly NodeRole[]): Promise<ProbeServer> {
  const server = new grpc.Server();
  server.addService(PROBE_SERVICE, {
    open: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      const who = peerIdentity(call);
      callback(null, Buffer.from(who === undefined ? 'none' : `${who.role}/${who.id}`));
    },
    guarded: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      try {
        const who = authorize(call, allowedRoles, 'Guarded');
        callback(null, Buffer.from(`${who.role}/${who.id}`));
      } catch (err) {
        callback(toServiceError(err));
      }
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', credentials, (err, bound) => (err === null ? resolve(bound) : reject(err))),
  );
  return {
    port,
    server,
    close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  };
}

/** One unary call on a client of its own (own subchannel pool: a fresh connection every time). */
export async function probe(port: number, credentials: grpc.ChannelCredentials, which: 'open' | 'guarded', timeoutMs = 5_000): Promise<string> {
  const client = new ProbeClient(`127.0.0.1:${port}`, credentials, { 'grpc.use_local_subchannel_pool': 1 });
  try {
    return await new Promise<string>((resolve, reject) => {
      client.makeUnaryRequest(
        PROBE_SERVICE[which].path,
        passThrough,
        passThrough,
        Buffer.alloc(0),
        { deadline: Date.now() + timeoutMs },
        (err: grpc.ServiceError | null, value?: Buffer) => (err === null ? resolve(String(value)) : reject(err)),
      );
    });
  } finally {
    client.close();
  }
}
