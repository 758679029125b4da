/**
 * Mutual TLS between nodes and TLS for the client API, on a real gRPC server on 127.0.0.1: who gets
 * in, who is refused (and where: the handshake or the handler), and certificate rotation without a
 * restart, on both the server's and the client's side.
 */
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { connect } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { BoraError } from '../../../common/errors';
import { CertificateReloader } from '../../../common/security/certificate-reloader';
import { certificateIdentity, issueCertificate } from '../../../common/security/pki';
import { writeIssuedFiles } from '../../../common/security/pki-files';
import { clientApiServerCredentials, nodeChannelCredentials, nodeServerCredentials } from '../../../common/security/tls-credentials';
import { fromServiceError } from '../../../common/wire/grpc-status';
import { eventually } from '../../support/wait';
import { ProbeClient, type ProbeServer, type TestPki, probe, startProbeServer, testPki } from '../../support/security';

const REFRESH_MS = 50;

function statusOf(err: unknown): grpc.status {
  return (err as grpc.ServiceError).code;
}

/** The identity in the certificate the server at `port` presents now (a raw TLS handshake). */
function serverIdentity(port: number, pki: TestPki, client: { cert: string; key: string }): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: pki.ca.certPem, cert: client.cert, key: client.key, ALPNProtocols: ['h2'] }, () => {
      const who = certificateIdentity(socket.getPeerCertificate().raw);
      socket.destroy();
      resolve(`${who.role}/${who.id}`);
    });
    socket.once('error', reject);
  });
}

describe('node mTLS credentials', () => {
  let pki: TestPki;
  let other: TestPki;
  let server: ProbeServer;
  let serverReloader: CertificateReloader;
  const reloaders: CertificateReloader[] = [];
  const reloader = (files: ConstructorParameters<typeof CertificateReloader>[0]): CertificateReloader => {
    const r = new CertificateReloader(files, { refreshIntervalMs: REFRESH_MS });
    reloaders.push(r);
    return r;
  };

  before(async () => {
    pki = await testPki();
    other = await testPki();
    serverReloader = reloader(await pki.issue('coordinator', 'c1'));
    server = await startProbeServer(nodeServerCredentials(serverReloader), ['worker']);
  });
  after(async () => {
    await server?.close();
    pki?.remove();
    other?.remove();
  });

  test('accepts a worker certificate from the cluster CA and sees its identity', async () => {
    const creds = nodeChannelCredentials(reloader(await pki.issue('worker', 'w1')));
    assert.equal(await probe(server.port, creds, 'open'), 'worker/w1');
    assert.equal(await probe(server.port, creds, 'guarded'), 'worker/w1');
  });

  test('refuses a client without a certificate at the handshake', async () => {
    const creds = grpc.credentials.createSsl(Buffer.from(pki.ca.certPem));
    const err = await probe(server.port, creds, 'open').then(() => undefined, (e: unknown) => e);
    assert.ok(err !== undefined, 'a client without a certificate reached a handler');
    assert.equal(statusOf(err), grpc.status.UNAVAILABLE);
  });

  test('refuses a certificate from another CA at the handshake', async () => {
    const foreign = await other.issue('worker', 'w1');
    const creds = grpc.credentials.createSsl(Buffer.from(pki.ca.certPem), Buffer.from(foreign.keyPem), Buffer.from(foreign.certPem));
    const err = await probe(server.port, creds, 'open').then(() => undefined, (e: unknown) => e);
    assert.ok(err !== undefined, 'a certificate from another CA reached a handler');
    assert.equal(statusOf(err), grpc.status.UNAVAILABLE);
  });

  test('refuses a plaintext client', async () => {
    const err = await probe(server.port, grpc.credentials.createInsecure(), 'open', 2_000).then(() => undefined, (e: unknown) => e);
    assert.ok(err !== undefined, 'a plaintext client reached a handler');
  });

  test('refuses the wrong role with PERMISSION_DENIED, which maps back to the typed error', async () => {
    const creds = nodeChannelCredentials(reloader(await pki.issue('admin', 'ops')));
    assert.equal(await probe(server.port, creds, 'open'), 'admin/ops'); // TLS let it in ...
    const err = await probe(server.port, creds, 'guarded').then(() => undefined, (e: unknown) => e);
    assert.ok(err !== undefined, 'an admin certificate passed a worker-only check');
    assert.equal(statusOf(err), grpc.status.PERMISSION_DENIED);
    const typed = fromServiceError(err as grpc.ServiceError);
    assert.ok(typed instanceof BoraError && typed.code === 'PERMISSION_DENIED', String(typed));
    assert.match(typed.message, /Guarded is not allowed for admin\/ops/);
  });

  test('a rewritten client certificate is used for new connections without a restart', async () => {
    const files = await pki.issue('worker', 'w7', 'rotating-client');
    const clientReloader = reloader(files);
    const creds = nodeChannelCredentials(clientReloader);
    assert.equal(await probe(server.port, creds, 'guarded'), 'worker/w7');
    writeIssuedFiles(pki.dir, 'rotating-client', await issueCertificate(pki.ca, { role: 'worker', id: 'w8' }));
    // No client is open between the two calls, so the reloader is idle: it rereads on the next use.
    assert.equal(await probe(server.port, creds, 'guarded'), 'worker/w8');
    assert.equal(clientReloader.identity().id, 'w8');
  });

  test('a long-lived client picks up a rewritten certificate by polling', async () => {
    const files = await pki.issue('worker', 'w5', 'polling-client');
    const clientReloader = reloader(files);
    const creds = nodeChannelCredentials(clientReloader);
    const held = new ProbeClient(`127.0.0.1:${server.port}`, creds); // once connected, keeps the reloader listened to
    try {
      await new Promise<void>((resolve, reject) => held.waitForReady(Date.now() + 5_000, (err) => (err ? reject(err) : resolve())));
      assert.equal(await probe(server.port, creds, 'guarded'), 'worker/w5');
      writeIssuedFiles(pki.dir, 'polling-client', await issueCertificate(pki.ca, { role: 'worker', id: 'w6' }));
      await eventually(() => clientReloader.identity().id === 'w6', 5_000, 'the client reloader to see w6');
      assert.equal(await probe(server.port, creds, 'guarded'), 'worker/w6');
    } finally {
      held.close();
    }
  });

  test('a rewritten server certificate is presented without a restart', async () => {
    const client = await pki.issue('worker', 'w9');
    assert.equal(await serverIdentity(server.port, pki, { cert: client.certPem, key: client.keyPem }), 'coordinator/c1');
    writeIssuedFiles(pki.dir, 'coordinator-c1', await issueCertificate(pki.ca, { role: 'coordinator', id: 'c2' }));
    await eventually(
      async () => (await serverIdentity(server.port, pki, { cert: client.certPem, key: client.keyPem })) === 'coordinator/c2',
      5_000,
      'the server to present c2',
    );
    // And it still serves gRPC after the swap.
    assert.equal(await probe(server.port, nodeChannelCredentials(reloader(client)), 'guarded'), 'worker/w9');
  });
});

describe('client API TLS credentials (client certificate optional)', () => {
  let pki: TestPki;
  let other: TestPki;
  let server: ProbeServer;

  before(async () => {
    pki = await testPki();
    other = await testPki();
    const files = await pki.issue('coordinator', 'c1');
    server = await startProbeServer(clientApiServerCredentials(new CertificateReloader(files, { refreshIntervalMs: REFRESH_MS })), ['admin']);
  });
  after(async () => {
    await server?.close();
    pki?.remove();
    other?.remove();
  });

  test('lets a client without a certificate in, with no identity; the guarded call says UNAUTHENTICATED', async () => {
    const creds = grpc.credentials.createSsl(Buffer.from(pki.ca.certPem));
    assert.equal(await probe(server.port, creds, 'open'), 'none');
    const err = await probe(server.port, creds, 'guarded').then(() => undefined, (e: unknown) => e);
    assert.ok(err !== undefined, 'an anonymous client passed an admin check');
    assert.equal(statusOf(err), grpc.status.UNAUTHENTICATED);
  });

  test('a certificate from another CA yields no identity (UNAUTHENTICATED), not the identity it claims', async () => {
    const foreign = await other.issue('admin', 'ops');
    const creds = grpc.credentials.createSsl(Buffer.from(pki.ca.certPem), Buffer.from(foreign.keyPem), Buffer.from(foreign.certPem));
    assert.equal(await probe(server.port, creds, 'open'), 'none');
    const err = await probe(server.port, creds, 'guarded').then(() => undefined, (e: unknown) => e);
    assert.ok(err !== undefined, 'a foreign admin certificate passed an admin check');
    assert.equal(statusOf(err), grpc.status.UNAUTHENTICATED);
  });

  test('an admin certificate from the cluster CA passes', async () => {
    const admin = await pki.issue('admin', 'ops');
    const creds = grpc.credentials.createSsl(Buffer.from(pki.ca.certPem), Buffer.from(admin.keyPem), Buffer.from(admin.certPem));
    assert.equal(await probe(server.port, creds, 'guarded'), 'admin/ops');
  });
});
