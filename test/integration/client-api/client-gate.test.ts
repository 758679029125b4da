/**
 * The client API's gate over a real gRPC server: API keys (missing, malformed, unknown, wrong
 * role), the reduced Status a client key sees, per-key admission limits with a retry-after in the
 * trailers, and the audit lines each refusal and admin call leaves. The generator is a stand-in
 * that streams a fixed number of tokens, so what is measured is the gate alone.
 */
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import type { GenerationEvent, GenerationRequest } from '../../../common/generation/request';
import { workerId } from '../../../common/ids';
import { ApiKeyStore, generateApiKey, hashApiKey } from '../../../common/security/api-keys';
import { AuditLog } from '../../../common/security/audit';
import { bindServer, type BoundServer } from '../../../common/wire/bind-server';
import type { ClusterStatus, GenerateEvent } from '../../../common/wire/messages';
import { boraProto, type InferenceClient } from '../../../common/wire/proto';
import { Admission } from '../../../coordinator/admission';
import { ClientGate } from '../../../coordinator/client-gate';
import { addInferenceService, type InferenceDeps } from '../../../coordinator/inference-service';
import { loadTokenizer } from '../../../common/tokenizer/load-tokenizer';
import { fixtureDir } from '../../support/checkpoints';

const CLIENT_KEY = generateApiKey();
const OTHER_CLIENT_KEY = generateApiKey();
const ADMIN_KEY = generateApiKey();
const record = (name: string, role: 'client' | 'admin', key: string) => ({ name, role, sha256: hashApiKey(key), createdAtMs: 0 });

const STATUS: ClusterStatus = {
  planEpoch: 4,
  model: 'm',
  workers: [{ id: 'w1', address: '10.0.0.1:7000', layerStart: 0, layerEnd: 2, sequences: 0, kvCacheBytes: 0, ready: true, experts: [] }],
  activeSequences: 0,
  waitingRequests: 0,
  serving: true,
  settled: true,
};

/** Streams `tokens` token events, one per `stepMs`, then finishes; `release()` lets held ones go. */
function fakeGenerator(tokens: number, stepMs: number) {
  return {
    start(request: GenerationRequest, onEvent: (event: GenerationEvent) => void) {
      let cancelled = false;
      const done = (async () => {
        for (let i = 0; i < tokens && !cancelled; i++) {
          await new Promise((r) => setTimeout(r, stepMs));
          onEvent({ type: 'token', index: i, tokenId: 100 + i, text: 'x' });
        }
        onEvent({ type: 'finish', reason: 'length', text: '', promptTokens: 1, generatedTokens: tokens, timeToFirstTokenMs: stepMs, totalMs: stepMs * tokens, resumes: 0 });
      })();
      return { done, cancel: () => (cancelled = true) };
    },
  };
}

const auth = (key: string | undefined): grpc.Metadata => {
  const m = new grpc.Metadata();
  if (key !== undefined) m.set('authorization', `Bearer ${key}`);
  return m;
};

function generate(client: InferenceClient, key: string | undefined): Promise<{ tokens: number; err?: grpc.ServiceError }> {
  return new Promise((resolve) => {
    let tokens = 0;
    const call = client.Generate({ tokenIds: { ids: [1, 2] }, maxTokens: 3 }, auth(key));
    call.on('data', (e: GenerateEvent) => (tokens += e.token === undefined || e.token === null ? 0 : 1));
    call.on('error', (err: grpc.ServiceError) => resolve({ tokens, err }));
    call.on('end', () => resolve({ tokens }));
  });
}

function unary<T>(fn: (cb: (err: grpc.ServiceError | null, reply?: T) => void) => void): Promise<{ reply?: T; err?: grpc.ServiceError }> {
  return new Promise((resolve) => fn((err, reply) => resolve(err === null ? { reply } : { err })));
}

describe('client API gate', () => {
  let bound: BoundServer;
  let client: InferenceClient;
  const auditLines: Record<string, unknown>[] = [];
  const drained: string[] = [];

  before(async () => {
    const sink = new PassThrough();
    sink.on('data', (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') auditLines.push(JSON.parse(line) as Record<string, unknown>);
    });
    const tokenizer = await loadTokenizer(fixtureDir('tiny-mistral'), { bosTokenId: 1, eosTokenId: 2 });
    const deps: InferenceDeps = {
      generator: () => fakeGenerator(3, 40),
      tokenizer,
      encode: async (text, options) => tokenizer.encode(text, options),
      maxPromptBytes: 1 << 20,
      maxPromptTokens: 1024,
      status: async () => STATUS,
      modelId: 'm',
      drain: async (id) => {
        drained.push(id);
        return 9;
      },
      gate: new ClientGate({
        keys: new ApiKeyStore([record('alice', 'client', CLIENT_KEY), record('bob', 'client', OTHER_CLIENT_KEY), record('ops', 'admin', ADMIN_KEY)]),
        admission: new Admission({
          defaultLimits: { requestsPerSecond: 1000, tokensPerMinute: 1_000_000, maxConcurrentStreams: 1 },
          limitsByKey: { bob: { requestsPerSecond: 1, requestBurst: 1, tokensPerMinute: 1_000_000, maxConcurrentStreams: 10 } },
          maxActiveStreams: 10,
          maxQueuedStreams: 0,
          maxQueueWaitMs: 1000,
        }),
        audit: new AuditLog(sink),
      }),
    };
    const server = new grpc.Server();
    addInferenceService(server, deps);
    bound = await bindServer(server, '127.0.0.1', 0);
    client = new (boraProto().Inference)(bound.address, grpc.credentials.createInsecure());
  });
  after(async () => {
    client.close();
    await bound.close();
  });

  test('no key, a malformed key and an unknown key are UNAUTHENTICATED on every method (Embed included); nothing runs', async () => {
    for (const key of [undefined, 'not-a-key', generateApiKey()]) {
      const g = await generate(client, key);
      assert.equal(g.err?.code, grpc.status.UNAUTHENTICATED, `Generate with ${String(key)}`);
      assert.equal(g.tokens, 0);
      const s = await unary<ClusterStatus>((cb) => client.Status({}, auth(key), cb));
      assert.equal(s.err?.code, grpc.status.UNAUTHENTICATED, 'Status');
      const d = await unary((cb) => client.Drain({ workerId: 'w1' }, auth(key), cb));
      assert.equal(d.err?.code, grpc.status.UNAUTHENTICATED, 'Drain');
      const p = await new Promise<grpc.ServiceError | null>((resolve) => {
        const call = client.SubmitPrompt(auth(key), (err) => resolve(err));
        call.write({ tokenIds: { ids: [1] } });
        call.end();
      });
      assert.equal(p?.code, grpc.status.UNAUTHENTICATED, 'SubmitPrompt');
      const chat = await new Promise<grpc.ServiceError | undefined>((resolve) => {
        const call = client.Chat(auth(key));
        call.on('error', resolve);
        call.on('end', () => resolve(undefined));
        call.on('data', () => undefined);
        call.write({ user: 'hi', maxTokens: 2 });
        call.end();
      });
      assert.equal(chat?.code, grpc.status.UNAUTHENTICATED, 'Chat');
      const e = await unary((cb) => client.Embed({ inputs: [{ tokenIds: { ids: [1, 2] } }] }, auth(key), cb));
      assert.equal(e.err?.code, grpc.status.UNAUTHENTICATED, 'Embed');
    }
    assert.deepEqual(drained, []);
  });

  test('a client key may generate but not drain; its Status leaves the workers out', async () => {
    assert.deepEqual(await generate(client, CLIENT_KEY), { tokens: 3 });
    const d = await unary((cb) => client.Drain({ workerId: 'w1' }, auth(CLIENT_KEY), cb));
    assert.equal(d.err?.code, grpc.status.PERMISSION_DENIED);
    assert.deepEqual(drained, []);
    const s = await unary<ClusterStatus>((cb) => client.Status({}, auth(CLIENT_KEY), cb));
    assert.equal(s.reply?.planEpoch, 4);
    assert.deepEqual(s.reply?.workers, []);
  });

  test('an admin key drains (audited) and sees the full Status', async () => {
    const d = await unary<{ planEpoch: number }>((cb) => client.Drain({ workerId: 'w1' }, auth(ADMIN_KEY), cb));
    assert.equal(d.reply?.planEpoch, 9);
    assert.deepEqual(drained, [workerId('w1')]);
    const s = await unary<ClusterStatus>((cb) => client.Status({}, auth(ADMIN_KEY), cb));
    assert.equal(s.reply?.workers.length, 1);
    assert.ok(auditLines.some((l) => l.what === 'Drain w1' && l.outcome === 'ok' && String(l.who).includes('key ops (admin)')));
  });

  test("past a key's concurrent-stream limit: RESOURCE_EXHAUSTED with retry-after; other keys are not held up", async () => {
    const [first, second, other] = await Promise.all([
      generate(client, CLIENT_KEY),
      new Promise<Awaited<ReturnType<typeof generate>>>((resolve) => setTimeout(() => void generate(client, CLIENT_KEY).then(resolve), 20)),
      generate(client, ADMIN_KEY),
    ]);
    assert.equal(first.tokens, 3);
    assert.equal(other.tokens, 3, 'another key streams while alice is at her limit');
    assert.equal(second.err?.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.match(second.err?.details ?? '', /streams open or queued/);
    assert.deepEqual(second.err?.metadata.get('retry-after'), ['1']);
    assert.ok(Number(second.err?.metadata.get('retry-after-ms')[0]) > 0);
  });

  test("past a key's requests per second: RESOURCE_EXHAUSTED with the time to the next token", async () => {
    const first = await generate(client, OTHER_CLIENT_KEY);
    const second = await generate(client, OTHER_CLIENT_KEY);
    assert.equal(first.tokens, 3);
    assert.equal(second.err?.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.match(second.err?.details ?? '', /requests per second/);
    const retryMs = Number(second.err?.metadata.get('retry-after-ms')[0]);
    assert.ok(retryMs > 0 && retryMs <= 1000, `retry after ${retryMs} ms`);
  });

  test('refusals are audited with the peer, never with the key', async () => {
    const refused = auditLines.filter((l) => l.outcome === 'refused');
    assert.ok(refused.some((l) => l.what === 'Generate' && String(l.who).startsWith('peer ')));
    assert.ok(refused.some((l) => l.what === 'Drain' && /not allowed for API key alice/.test(String(l.detail))));
    assert.ok(refused.some((l) => l.what === 'Generate' && /key bob/.test(String(l.who)) && /requests per second/.test(String(l.detail))));
    for (const l of auditLines) for (const key of [CLIENT_KEY, OTHER_CLIENT_KEY, ADMIN_KEY]) assert.ok(!JSON.stringify(l).includes(key));
  });
});
