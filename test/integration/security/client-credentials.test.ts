/**
 * The command line's client channel against a TLS server standing in for the coordinator's client
 * API: with the cluster CA and an API key, calls go through and carry `authorization: Bearer KEY`
 * (and the client certificate); a plaintext client, or one trusting another CA, never reaches the
 * handler.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import type { CoordinatorAccess } from '../../../cli/client-credentials';
import { fetchStatus } from '../../../cli/inference-client';
import { BoraError } from '../../../common/errors';
import { AUTHORIZATION_METADATA_KEY } from '../../../common/security/api-keys';
import { CertificateReloader } from '../../../common/security/certificate-reloader';
import { peerIdentity } from '../../../common/security/peer-identity';
import { clientApiServerCredentials } from '../../../common/security/tls-credentials';
import { boraProto } from '../../../common/wire/proto';
import { type TestPki, testPki } from '../../support/security';

const KEY = 'bora_test-key';

describe('client credentials (TLS + API key) on the Inference API', () => {
  let pki: TestPki;
  let other: TestPki;
  let server: grpc.Server;
  let address: string;
  const seen: { authorization: string[]; peer: string }[] = [];

  before(async () => {
    pki = await testPki();
    other = await testPki();
    const own = await pki.issue('coordinator', 'c1');
    server = new grpc.Server();
    server.addService(boraProto().Inference.service, {
      status: (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        const authorization = call.metadata.get(AUTHORIZATION_METADATA_KEY).map(String);
        seen.push({ authorization, peer: peerIdentity(call)?.role ?? 'none' });
        if (authorization[0] !== `Bearer ${KEY}`) callback({ code: grpc.status.UNAUTHENTICATED, details: 'no key' });
        else callback(null, { planEpoch: 7 });
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(
        '127.0.0.1:0',
        clientApiServerCredentials(new CertificateReloader(own)), // as the coordinator serves its client API
        (err, bound) => (err === null ? resolve(bound) : reject(err)),
      ),
    );
    address = `127.0.0.1:${port}`;
  });
  after(async () => {
    await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    pki.remove();
    other.remove();
  });

  test('the cluster CA, a client certificate and an API key: the call goes through with the key', async () => {
    const client = await pki.issue('client', 'local');
    const access: CoordinatorAccess = { tls: { ca: client.ca, cert: client.cert, key: client.key }, apiKey: KEY };
    const status = await fetchStatus(address, 5_000, access);
    assert.equal(status.planEpoch, 7);
    assert.deepEqual(seen.at(-1), { authorization: [`Bearer ${KEY}`], peer: 'client' });
  });

  test('TLS without an API key reaches the server, which refuses it', async () => {
    const err = await fetchStatus(address, 5_000, { tls: { ca: `${pki.dir}/ca.pem` } }).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof BoraError && err.code === 'UNAUTHENTICATED', String(err));
    assert.deepEqual(seen.at(-1)?.authorization, []);
  });

  test('a plaintext client or one trusting another CA never reaches the handler', async () => {
    const before = seen.length;
    const plaintext = await fetchStatus(address, 3_000).then(() => undefined, (e: unknown) => e);
    assert.ok(plaintext instanceof BoraError && plaintext.code === 'UNAVAILABLE', String(plaintext));
    const foreignCa = `${other.dir}/ca.pem`;
    assert.notEqual(readFileSync(foreignCa, 'utf8'), pki.ca.certPem);
    const foreign = await fetchStatus(address, 3_000, { tls: { ca: foreignCa }, apiKey: KEY }).then(() => undefined, (e: unknown) => e);
    assert.ok(foreign instanceof BoraError && foreign.code === 'UNAVAILABLE', String(foreign));
    assert.equal(seen.length, before);
  });
});
