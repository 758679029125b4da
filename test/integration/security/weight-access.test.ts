/**
 * WeightSource on the coordinator's port (TLS, client certificate optional, since the client API
 * shares it): the checkpoint goes to worker and admin certificates only. A caller without a
 * certificate gets UNAUTHENTICATED, a client or coordinator certificate PERMISSION_DENIED, each
 * audited; a worker certificate gets the tensor, checked end to end by RemoteWeightSource.
 */
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { Checkpoint } from '../../../common/model/checkpoint';
import { AuditLog, type AuditRecord } from '../../../common/security/audit';
import { NodeAccess } from '../../../common/security/node-access';
import { type NodeSecurity, coordinatorPortCredentials, dialNode, tlsNodeSecurity } from '../../../common/security/node-security';
import { bindServer, type BoundServer } from '../../../common/wire/bind-server';
import { boraProto, type WeightSourceClient } from '../../../common/wire/proto';
import { weightServiceHandlers } from '../../../coordinator/weight-service';
import { RemoteWeightSource } from '../../../worker/remote-weights';
import { fixtureDir } from '../../support/checkpoints';
import { type TestPki, testPki } from '../../support/security';

const TENSOR = 'lm_head.weight';

describe('WeightSource with TLS', () => {
  let pki: TestPki;
  let ckpt: Checkpoint;
  let server: BoundServer;
  const audit: AuditRecord[] = [];

  before(async () => {
    pki = await testPki();
    ckpt = await Checkpoint.open(fixtureDir('tiny-mistral'));
    const sink = new PassThrough();
    sink.on('data', (chunk: Buffer) => {
      for (const line of String(chunk).split('\n')) if (line !== '') audit.push(JSON.parse(line) as AuditRecord);
    });
    const security = tlsNodeSecurity(await pki.issue('coordinator', 'c1'), 'coordinator');
    const grpcServer = new grpc.Server();
    grpcServer.addService(boraProto().WeightSource.service, weightServiceHandlers(ckpt, 'tiny', new NodeAccess(security, { audit: new AuditLog(sink) })));
    server = await bindServer(grpcServer, '127.0.0.1', 0, coordinatorPortCredentials(security));
  });
  after(async () => {
    await server?.close();
    pki?.remove();
  });

  /** FetchTensor's status code (OK when the stream ended normally). */
  function fetchTensorCode(credentials: grpc.ChannelCredentials, options: grpc.ChannelOptions): Promise<grpc.status> {
    const client = new (boraProto().WeightSource)(server.address, credentials, { ...options, 'grpc.use_local_subchannel_pool': 1 }) as WeightSourceClient;
    return new Promise<grpc.status>((resolve) => {
      const call = client.fetchTensor({ model: 'tiny', name: TENSOR }, { deadline: Date.now() + 5_000 });
      call.on('data', () => undefined);
      call.on('error', (err: grpc.ServiceError) => resolve(err.code));
      call.on('end', () => resolve(grpc.status.OK));
    }).finally(() => client.close());
  }

  function fetchConfigCode(security: NodeSecurity): Promise<grpc.status> {
    const dial = dialNode(security, server.address);
    const client = new (boraProto().WeightSource)(server.address, dial.credentials, { ...dial.options, 'grpc.use_local_subchannel_pool': 1 }) as WeightSourceClient;
    return new Promise<grpc.status>((resolve) => client.fetchConfig({ model: 'tiny' }, { deadline: Date.now() + 5_000 }, (err) => resolve(err?.code ?? grpc.status.OK))).finally(() => client.close());
  }

  test('a TLS client without a certificate gets UNAUTHENTICATED, audited with its address', async () => {
    const code = await fetchTensorCode(grpc.credentials.createSsl(Buffer.from(pki.ca.certPem)), { 'grpc.ssl_target_name_override': 'localhost' });
    assert.equal(code, grpc.status.UNAUTHENTICATED);
    const line = audit.find((r) => r.what === 'FetchTensor' && r.outcome === 'refused' && /127\.0\.0\.1/.test(r.who));
    assert.ok(line !== undefined, JSON.stringify(audit));
  });

  for (const [role, id] of [['client', 'u1'], ['coordinator', 'c2']] as const) {
    test(`a ${role} certificate gets PERMISSION_DENIED on FetchTensor and FetchConfig`, async () => {
      const security = tlsNodeSecurity(await pki.issue(role, id));
      const dial = dialNode(security, server.address);
      assert.equal(await fetchTensorCode(dial.credentials, dial.options), grpc.status.PERMISSION_DENIED);
      assert.equal(await fetchConfigCode(security), grpc.status.PERMISSION_DENIED);
      assert.ok(audit.some((r) => r.who === `${role}/${id}` && r.what === 'FetchTensor' && r.outcome === 'refused'));
    });
  }

  test('a worker certificate is served the tensor, intact', async () => {
    const source = await RemoteWeightSource.connect(server.address, 'tiny', tlsNodeSecurity(await pki.issue('worker', 'w1'), 'worker'));
    try {
      const remote = await source.readRaw(TENSOR);
      const local = await ckpt.readRaw(TENSOR);
      assert.deepEqual(remote.shape, [...local.shape]);
      assert.ok(Buffer.from(remote.bytes).equals(Buffer.from(local.bytes)));
    } finally {
      source.close();
    }
  });

  test('an admin certificate is served too', async () => {
    const dial = dialNode(tlsNodeSecurity(await pki.issue('admin', 'ops')), server.address);
    assert.equal(await fetchTensorCode(dial.credentials, dial.options), grpc.status.OK);
  });

  test('a node refuses to dial a server whose certificate is not a node certificate', async () => {
    // The same CA, but a client certificate serving: a worker fetching weights must not trust it.
    const impostor = tlsNodeSecurity(await pki.issue('client', 'mallory'));
    const grpcServer = new grpc.Server();
    grpcServer.addService(boraProto().WeightSource.service, weightServiceHandlers(ckpt, 'tiny'));
    const rogue = await bindServer(grpcServer, '127.0.0.1', 0, coordinatorPortCredentials(impostor));
    try {
      const err = await RemoteWeightSource.connect(rogue.address, 'tiny', tlsNodeSecurity(await pki.issue('worker', 'w2'))).then(
        (s) => {
          s.close();
          return undefined;
        },
        (e: unknown) => e,
      );
      assert.ok(err !== undefined, 'a worker fetched weights from a client-certificate server');
      assert.equal((err as { code?: string }).code, 'UNAVAILABLE');
    } finally {
      await rogue.close();
    }
  });
});
