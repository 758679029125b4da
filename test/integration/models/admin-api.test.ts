/**
 * The registry's admin RPCs (coordinator/model-admin.ts) over a real gRPC server and a real etcd:
 * every one needs the admin role (no key: UNAUTHENTICATED, a client key: PERMISSION_DENIED, and
 * nothing is written either way; each refusal audited); with an admin key a version is added,
 * listed with its status and removed, except while the plan serves it (FAILED_PRECONDITION); a
 * malformed name or record is INVALID_ARGUMENT. `bora models --coordinator` against an open
 * (development) server goes through the same RPCs.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { EtcdKeys } from '../../../common/cluster/etcd-keys';
import { PlanStore } from '../../../common/cluster/plan-store';
import { workerId } from '../../../common/ids';
import { ModelRegistry } from '../../../common/models/model-registry';
import { describeModelVersion } from '../../../common/models/weight-digests';
import type { ModelVersionRecord } from '../../../common/models/version-record';
import { ApiKeyStore, generateApiKey, hashApiKey } from '../../../common/security/api-keys';
import { AuditLog } from '../../../common/security/audit';
import { bindServer, type BoundServer } from '../../../common/wire/bind-server';
import type { ModelVersion } from '../../../common/wire/generated/bora/v1/ModelVersion';
import type { ModelVersionList__Output } from '../../../common/wire/generated/bora/v1/ModelVersionList';
import { versionToWire } from '../../../common/wire/model-version-codec';
import { boraProto, type InferenceClient } from '../../../common/wire/proto';
import { ClientGate } from '../../../coordinator/client-gate';
import { addInferenceService, type InferenceDeps } from '../../../coordinator/inference-service';
import { loadTokenizer } from '../../../common/tokenizer/load-tokenizer';
import { fixtureDir } from '../../support/checkpoints';
import { boraBin } from '../../support/cluster';
import { etcdSuite } from '../../support/etcd';

const CLIENT_KEY = generateApiKey();
const ADMIN_KEY = generateApiKey();
const keyRecord = (name: string, role: 'client' | 'admin', key: string) => ({ name, role, sha256: hashApiKey(key), createdAtMs: 0 });
const auth = (key: string | undefined): grpc.Metadata => {
  const m = new grpc.Metadata();
  if (key !== undefined) m.set('authorization', `Bearer ${key}`);
  return m;
};

function unary<T>(fn: (cb: (err: grpc.ServiceError | null, reply?: T) => void) => void): Promise<{ reply?: T; err?: grpc.ServiceError }> {
  return new Promise((resolve) => fn((err, reply) => resolve(err === null ? { reply } : { err })));
}

async function serve(registry: ModelRegistry, gate: ClientGate): Promise<BoundServer> {
  const tokenizer = await loadTokenizer(fixtureDir('tiny-mistral'), { bosTokenId: 1, eosTokenId: 2 });
  const deps: InferenceDeps = {
    generator: () => ({ start: () => { throw new Error('not used'); } }),
    tokenizer,
    encode: async (text, options) => tokenizer.encode(text, options),
    maxPromptBytes: 1 << 20,
    maxPromptTokens: 1024,
    status: async () => { throw new Error('not used'); },
    modelId: 'tiny-mistral',
    models: () => registry,
    gate,
  };
  const server = new grpc.Server();
  addInferenceService(server, deps);
  return bindServer(server, '127.0.0.1', 0);
}

describe('model registry admin API', () => {
  const suite = etcdSuite();
  const keys = new EtcdKeys('/admin-api');
  const auditLines: Record<string, unknown>[] = [];
  let secured: BoundServer;
  let open: BoundServer;
  let client: InferenceClient;
  let registry: ModelRegistry;
  let record: ModelVersionRecord;

  before(async () => {
    record = await describeModelVersion({ name: 'tiny', version: 'v1' }, fixtureDir('tiny-mistral'));
    registry = new ModelRegistry(suite.client, keys);
    const sink = new PassThrough();
    sink.on('data', (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') auditLines.push(JSON.parse(line) as Record<string, unknown>);
    });
    secured = await serve(registry, new ClientGate({ keys: new ApiKeyStore([keyRecord('alice', 'client', CLIENT_KEY), keyRecord('ops', 'admin', ADMIN_KEY)]), admission: undefined, audit: new AuditLog(sink) }));
    open = await serve(new ModelRegistry(suite.client, new EtcdKeys('/admin-open')), new ClientGate({ keys: undefined, admission: undefined, audit: undefined }));
    client = new (boraProto().Inference)(secured.address, grpc.credentials.createInsecure());
  });
  after(async () => {
    client?.close();
    await secured?.close();
    await open?.close();
  });

  const add = (message: ModelVersion, key: string | undefined) => unary<ModelVersion>((cb) => client.AddModelVersion(message, auth(key), cb));
  const list = (key: string | undefined) => unary<ModelVersionList__Output>((cb) => client.ListModelVersions({}, auth(key), cb));
  const remove = (model: string, key: string | undefined) => unary((cb) => client.RemoveModelVersion({ model }, auth(key), cb));

  test('without a key every registry call is UNAUTHENTICATED, with a client key PERMISSION_DENIED; nothing is written', { timeout: 20_000 }, async () => {
    await registry.add({ ...record, version: 'kept' });
    for (const [key, code] of [[undefined, grpc.status.UNAUTHENTICATED], ['not-a-key', grpc.status.UNAUTHENTICATED], [CLIENT_KEY, grpc.status.PERMISSION_DENIED]] as const) {
      assert.equal((await add(versionToWire(record, { withTensors: true }), key)).err?.code, code, `AddModelVersion with ${String(key)}`);
      assert.equal((await list(key)).err?.code, code, `ListModelVersions with ${String(key)}`);
      assert.equal((await remove('tiny@kept', key)).err?.code, code, `RemoveModelVersion with ${String(key)}`);
    }
    assert.deepEqual((await registry.list()).map((v) => v.record.version), ['kept'], 'nothing added, nothing removed');
    const refused = auditLines.filter((l) => l.outcome === 'refused').map((l) => l.what);
    for (const method of ['AddModelVersion', 'ListModelVersions', 'RemoveModelVersion']) assert.ok(refused.includes(method), `${method} refusal audited`);
    assert.ok(auditLines.some((l) => l.what === 'RemoveModelVersion' && /not allowed for API key alice/.test(String(l.detail))));
    await registry.remove({ name: 'tiny', version: 'kept' });
  });

  test('an admin key adds, lists and removes; removal is refused while the plan serves the version', { timeout: 20_000 }, async () => {
    const added = await add(versionToWire(record, { withTensors: true }), ADMIN_KEY);
    assert.equal(added.err, undefined, added.err?.details);
    assert.equal(added.reply?.status, 'ready');
    assert.deepEqual(await registry.get({ name: 'tiny', version: 'v1' }), record, 'the record in etcd is the one sent, tensor digests included');
    assert.equal((await add(versionToWire(record, { withTensors: true }), ADMIN_KEY)).err?.code, grpc.status.FAILED_PRECONDITION);
    const listed = await list(ADMIN_KEY);
    assert.deepEqual(listed.reply?.versions.map((v) => [`${v.name}@${v.version}`, v.status, v.files[0].sha256, v.tensors.length]), [['tiny@v1', 'ready', record.files[0].sha256, 0]]);

    await new PlanStore({ client: suite.client, keys, log: suite.log }).publish({ epoch: 1, modelId: 'tiny-mistral', modelVersion: 'tiny@v1', numLayers: 6, stages: [{ range: { start: 0, end: 6 }, workers: [workerId('w1')] }] });
    const refused = await remove('tiny@v1', ADMIN_KEY);
    assert.equal(refused.err?.code, grpc.status.FAILED_PRECONDITION);
    assert.match(refused.err?.details ?? '', /tiny@v1 serves traffic \(plan epoch 1\)/);
    assert.equal((await remove('tiny@v9', ADMIN_KEY)).err?.code, grpc.status.NOT_FOUND);
    assert.equal((await remove('tiny', ADMIN_KEY)).err?.code, grpc.status.INVALID_ARGUMENT);
    assert.equal((await add({ ...versionToWire(record, { withTensors: true }), version: 'v2', path: 'relative' }, ADMIN_KEY)).err?.code, grpc.status.INVALID_ARGUMENT);
    assert.equal((await add({ ...versionToWire(record, { withTensors: true }), name: 'a/b' }, ADMIN_KEY)).err?.code, grpc.status.INVALID_ARGUMENT);
    assert.ok(auditLines.some((l) => l.what === 'AddModelVersion tiny@v1' && l.outcome === 'ok' && String(l.who).includes('key ops (admin)')));
    assert.ok(auditLines.some((l) => l.what === 'RemoveModelVersion tiny@v1' && l.outcome === 'failed'));
  });

  test('bora models --coordinator goes through the admin API', { timeout: 120_000 }, async () => {
    const run = promisify(execFile);
    const cli = (args: string[]) => run(process.execPath, [boraBin(), 'models', ...args, '--coordinator', open.address], { timeout: 60_000 });
    assert.match((await cli(['add', 'tiny@v3', fixtureDir('tiny-mistral')])).stdout, /^added tiny@v3/);
    const openRegistry = new ModelRegistry(suite.client, new EtcdKeys('/admin-open'));
    assert.deepEqual((await openRegistry.get({ name: 'tiny', version: 'v3' }))?.tensors, record.tensors);
    assert.match((await cli(['list'])).stdout, /^tiny@v3\tready\thub/m);
    assert.match((await cli(['remove', 'tiny@v3'])).stdout, /^removed tiny@v3/);
    assert.equal(await openRegistry.get({ name: 'tiny', version: 'v3' }), undefined);
  });
});
