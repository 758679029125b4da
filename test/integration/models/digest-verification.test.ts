/**
 * Workers verify the weights of the registered version a plan serves (worker/version-check.ts),
 * with the real nodes in process and a real etcd:
 *   - a worker whose own copy has one byte changed refuses the plan, names the file, and the
 *     version is marked failed in the registry (a coordinator then refuses to serve it);
 *   - a worker fetching tensors from a coordinator whose copy is tampered refuses the plan, naming
 *     the tensor, and marks the version failed alike;
 *   - intact weights serve: the response names the version (`bora-model-version`), and a request
 *     may name the model as NAME or NAME@VERSION; another version is NOT_FOUND, a malformed name
 *     INVALID_ARGUMENT (Generate and Embed alike), and the served version cannot be removed
 *     (FAILED_PRECONDITION).
 */
import assert from 'node:assert/strict';
import { copyFile, mkdir, open } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { EtcdKeys } from '../../../common/cluster/etcd-keys';
import { FailedPreconditionError } from '../../../common/errors';
import { workerId } from '../../../common/ids';
import { Checkpoint, CONFIG_FILE, SINGLE_FILE } from '../../../common/model/checkpoint';
import { ModelRegistry } from '../../../common/models/model-registry';
import { describeModelVersion } from '../../../common/models/weight-digests';
import { requestToWire } from '../../../common/wire/generate-codec';
import type { GenerateEvent } from '../../../common/wire/messages';
import { boraProto, type InferenceClient } from '../../../common/wire/proto';
import { CoordinatorNode, type CoordinatorOptions } from '../../../coordinator/coordinator-node';
import { MODEL_VERSION_METADATA } from '../../../coordinator/model-routing';
import { WorkerNode } from '../../../worker/worker-node';
import { fixtureDir, loadReference, tempDir } from '../../support/checkpoints';
import { greedyIds } from '../../support/cluster';
import { etcdSuite } from '../../support/etcd';
import { eventually } from '../../support/wait';
import { callbackLogger } from '../../../common/logging/logger';

const KEEPALIVE_MS = 1000;
const TAMPERED_TENSOR = 'model.layers.0.self_attn.q_proj.weight';
const ref = loadReference('tiny-mistral');

/** `<root>/tiny-mistral/`, a copy of the fixture with one byte of TAMPERED_TENSOR flipped. */
async function tamperedCopy(t: TestContext): Promise<{ root: string; dir: string }> {
  const root = await tempDir(t, 'tampered');
  const dir = join(root, 'tiny-mistral');
  await mkdir(dir);
  for (const f of [CONFIG_FILE, SINGLE_FILE]) await copyFile(join(fixtureDir('tiny-mistral'), f), join(dir, f));
  const entry = (await Checkpoint.open(dir)).entry(TAMPERED_TENSOR);
  const fh = await open(join(dir, SINGLE_FILE), 'r+');
  const at = entry.fileOffset + 17;
  const byte = Buffer.alloc(1);
  await fh.read(byte, 0, 1, at);
  await fh.write(Buffer.from([byte[0] ^ 0x40]), 0, 1, at);
  await fh.close();
  return { root, dir };
}

describe('weight digests of a registered version', () => {
  const suite = etcdSuite();
  const logs: string[] = [];
  const log = (m: string): void => {
    logs.push(m);
    if (process.env.BORA_TEST_LOG === '1') process.stderr.write(`${m}\n`);
  };

  /** A coordinator's options: tiny@v1 from `modelDir` under `prefix`. */
  const coordinatorOptions = (prefix: string, modelDir: string): CoordinatorOptions => ({
    etcdUrl: suite.etcd.url,
    listenHost: '127.0.0.1',
    listenPort: 0,
    modelDir,
    modelId: 'tiny-mistral',
    modelVersion: { name: 'tiny', version: 'v1' },
    keysPrefix: prefix,
    expertsMode: 'local',
    replicas: 1,
    leaseTtlMs: 3000,
    stepTimeoutMs: 30_000,
    readyTimeoutMs: 120_000,
    replanDebounceMs: 100,
    keepaliveTimeMs: KEEPALIVE_MS,
    keepaliveTimeoutMs: KEEPALIVE_MS,
    maxBatchTokens: 512,
    maxBatchSequences: 32,
    log: callbackLogger((m) => log(`[coordinator ${prefix}] ${m}`)),
  });

  /** A coordinator serving tiny@v1 from `modelDir` under `prefix`, stopped when `t` ends. */
  async function coordinator(t: TestContext, prefix: string, modelDir: string): Promise<CoordinatorNode> {
    const node = new CoordinatorNode(coordinatorOptions(prefix, modelDir));
    t.after(() => node.stop());
    await node.start();
    return node;
  }

  async function worker(t: TestContext, prefix: string, id: string, modelsDir: string | undefined): Promise<WorkerNode> {
    const node = new WorkerNode({
      id: workerId(id),
      etcdUrl: suite.etcd.url,
      listenHost: '127.0.0.1',
      listenPort: 0,
      modelsDir,
      keysPrefix: prefix,
      memoryBytes: 256 * 1024 * 1024,
      compute: { threads: 1 },
      leaseTtlMs: 3000,
      keepaliveTimeMs: KEEPALIVE_MS,
      keepaliveTimeoutMs: KEEPALIVE_MS,
      log: callbackLogger((m) => log(`[worker ${id}] ${m}`)),
    });
    t.after(() => node.stop());
    await node.start();
    return node;
  }

  async function register(prefix: string): Promise<ModelRegistry> {
    const registry = new ModelRegistry(suite.client, new EtcdKeys(prefix));
    await registry.add(await describeModelVersion({ name: 'tiny', version: 'v1' }, fixtureDir('tiny-mistral')));
    return registry;
  }

  test("a worker's tampered copy: the plan is refused naming the file, and the version is marked failed", { timeout: 60_000 }, async (t) => {
    const registry = await register('/local');
    const { root, dir } = await tamperedCopy(t);
    const node = await coordinator(t, '/local', fixtureDir('tiny-mistral'));
    await worker(t, '/local', 'w0', root);
    await eventually(async () => (await registry.describe({ name: 'tiny', version: 'v1' })).status === 'failed', 30_000, 'the version to be marked failed');
    const described = await registry.describe({ name: 'tiny', version: 'v1' });
    assert.equal(described.failures.length, 1);
    const failure = described.failures[0];
    assert.equal(failure.worker, 'w0');
    assert.equal(failure.file, join(dir, SINGLE_FILE));
    assert.equal(failure.expectedSha256, described.record.files[0].sha256);
    assert.notEqual(failure.actualSha256, failure.expectedSha256);
    assert.ok(logs.some((l) => l.includes('[worker w0] could not apply plan') && l.includes(join(dir, SINGLE_FILE)) && l.includes('SHA-256 does not match the registered version tiny@v1')), 'the refusal names the file');
    const status = await node.status();
    assert.equal(status.workers.find((w) => w.id === 'w0')?.ready, false, 'the worker never serves the tampered weights');
    // A coordinator will not start serving a failed version.
    const next = new CoordinatorNode(coordinatorOptions('/local', fixtureDir('tiny-mistral')));
    await assert.rejects(next.start(), (err: unknown) => err instanceof FailedPreconditionError && /tiny@v1 is marked failed: worker w0/.test(err.message));
    await next.stop();
  });

  test("tensors fetched from a coordinator whose copy is tampered: refused naming the tensor, the version marked failed", { timeout: 60_000 }, async (t) => {
    const registry = await register('/remote');
    const { dir } = await tamperedCopy(t);
    await coordinator(t, '/remote', dir);
    await worker(t, '/remote', 'w1', undefined);
    await eventually(async () => (await registry.describe({ name: 'tiny', version: 'v1' })).status === 'failed', 30_000, 'the version to be marked failed');
    const described = await registry.describe({ name: 'tiny', version: 'v1' });
    const failure = described.failures[0];
    assert.equal(failure.worker, 'w1');
    assert.match(failure.file, new RegExp(`^tensor ${TAMPERED_TENSOR.replace(/\./g, '\\.')} \\(from 127\\.0\\.0\\.1:\\d+/tiny-mistral\\)$`));
    assert.equal(failure.expectedSha256, described.record.tensors[TAMPERED_TENSOR]);
    assert.notEqual(failure.actualSha256, failure.expectedSha256);
  });

  test('intact weights serve; the response names the version; requests may name NAME or NAME@VERSION', { timeout: 90_000 }, async (t) => {
    const registry = await register('/serve');
    const node = await coordinator(t, '/serve', fixtureDir('tiny-mistral'));
    await worker(t, '/serve', 'w2', join(fixtureDir('tiny-mistral'), '..'));
    await eventually(async () => (await node.status()).settled, 30_000, 'the plan to settle');
    assert.ok(logs.some((l) => l.startsWith('[worker w2] verified 1 weight file(s) of tiny@v1')));
    assert.equal((await registry.describe({ name: 'tiny', version: 'v1' })).status, 'ready');

    const client = new (boraProto().Inference)(node.address, grpc.credentials.createInsecure()) as InferenceClient;
    t.after(() => client.close());
    const c = ref.cases[0];
    const generate = (model: string) =>
      new Promise<{ tokens: number[]; version?: string; err?: grpc.ServiceError }>((resolve) => {
        const tokens: number[] = [];
        let version: string | undefined;
        const call = client.generate({ ...requestToWire(greedyIds(c.prompt_ids, 4)), model }, { deadline: Date.now() + 60_000 });
        call.on('metadata', (m: grpc.Metadata) => (version = m.get(MODEL_VERSION_METADATA)[0] as string | undefined));
        call.on('data', (e: GenerateEvent) => e.token != null && tokens.push(e.token.tokenId));
        call.on('error', (err: grpc.ServiceError) => resolve({ tokens, version, err }));
        call.on('end', () => resolve({ tokens, version }));
      });
    for (const model of ['', 'tiny', 'tiny@v1', 'tiny-mistral']) {
      const r = await generate(model);
      assert.equal(r.err, undefined, `${model}: ${r.err?.details}`);
      assert.deepEqual(r.tokens, c.greedy_tokens.slice(0, 4), model);
      assert.equal(r.version, 'tiny@v1', model);
    }
    const other = await generate('tiny@v2');
    assert.equal(other.err?.code, grpc.status.NOT_FOUND);
    assert.match(other.err?.details ?? '', /unknown model "tiny@v2"; this cluster serves "tiny@v1"/);
    assert.equal((await generate('tiny@v1@x')).err?.code, grpc.status.INVALID_ARGUMENT);
    const embed = (model: string) =>
      new Promise<{ values?: number; version?: string; err?: grpc.ServiceError }>((resolve) => {
        let version: string | undefined;
        const call = client.embed({ model, inputs: [{ tokenIds: { ids: [...c.prompt_ids] } }] }, { deadline: Date.now() + 60_000 }, (err, reply) =>
          resolve(err === null ? { values: reply?.embeddings[0]?.values.length, version } : { err, version }),
        );
        call.on('metadata', (m: grpc.Metadata) => (version = m.get(MODEL_VERSION_METADATA)[0] as string | undefined));
      });
    const embedded = await embed('tiny@v1');
    assert.equal(embedded.err, undefined, embedded.err?.details);
    assert.ok((embedded.values ?? 0) > 0);
    assert.equal(embedded.version, 'tiny@v1');
    assert.equal((await embed('tiny@v2')).err?.code, grpc.status.NOT_FOUND);
    const removal = await new Promise<grpc.ServiceError | null>((resolve) => client.removeModelVersion({ model: 'tiny@v1' }, (err) => resolve(err)));
    assert.equal(removal?.code, grpc.status.FAILED_PRECONDITION);
    assert.notEqual(await registry.get({ name: 'tiny', version: 'v1' }), undefined);
  });
});
