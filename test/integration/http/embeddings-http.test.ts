/**
 * POST /v1/embeddings on a `bora up` cluster, through the official `openai` client
 * (`client.embeddings.create`, which asks for base64 and decodes it, and with
 * encoding_format "float"): every vector is bit for bit the one gRPC Embed returns for the same
 * input (a string, strings, token ids), also for requests sent at once (batched together by the
 * scheduler); usage.prompt_tokens is gRPC's count. Bad input gets OpenAI's error shape (400
 * naming the field, 404 for another model, 413 for a body over the limit) and the coordinator
 * serves on; each call is timed in bora_embedding_seconds and counted in bora_requests_total.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { ServiceError } from '@grpc/grpc-js';
import OpenAI from 'openai';
import { inferenceClient } from '../../../cli/inference-client';
import { findSample, sampleValue, scrapeMetrics } from '../../../common/metrics/exposition';
import { DEFAULT_MAX_PROMPT_BYTES } from '../../../common/generation/prompt-limits';
import type { EmbedReply__Output } from '../../../common/wire/generated/bora/v1/EmbedReply';
import type { EmbedRequest } from '../../../common/wire/generated/bora/v1/EmbedRequest';
import { fixtureDir } from '../../support/checkpoints';
import { startCluster, type TestCluster } from '../../support/cluster';

const MODEL = fixtureDir('tiny-mistral');

function grpcEmbed(address: string, request: EmbedRequest): Promise<EmbedReply__Output> {
  const client = inferenceClient(address);
  return new Promise<EmbedReply__Output>((resolve, reject) =>
    client.embed(request, { deadline: Date.now() + 60_000 }, (err: ServiceError | null, reply?: EmbedReply__Output) => (err ? reject(err) : resolve(reply!))),
  ).finally(() => client.close());
}

/** The float32 bytes of a vector: equal bytes, equal bits. */
const bits = (v: readonly number[]): Buffer => Buffer.from(new Float32Array(v).buffer);

function assertSameBits(got: readonly number[], want: readonly number[], what: string): void {
  assert.equal(got.length, want.length, `${what}: dimensions`);
  assert.ok(got.every((x) => Math.fround(x) === x), `${what}: float32 values`);
  assert.ok(bits(got).equals(bits(want)), `${what}: bit for bit gRPC Embed's vector`);
}

async function postJson(cluster: TestCluster, body: string | object): Promise<{ status: number; json: { error?: { param: string | null; message: string; type: string; code: string | null } } }> {
  const res = await fetch(`http://${cluster.file.http}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as never };
}

describe('POST /v1/embeddings on a local cluster', () => {
  let cluster: TestCluster;
  let openai: OpenAI;
  /** Successful embedding calls so far (HTTP and gRPC), for bora_embedding_seconds_count. */
  let calls = 0;
  before(async () => {
    cluster = await startCluster(undefined, MODEL, 2);
    openai = new OpenAI({ baseURL: `http://${cluster.file.http}/v1`, apiKey: 'not-checked-on-an-insecure-cluster', maxRetries: 0, timeout: 120_000 });
  });
  after(() => cluster?.down());

  test('a string, strings and token ids: the vectors of gRPC Embed bit for bit, in base64 and float', async () => {
    const text = 'The capital of France is';
    const ids = [1, ...Array.from({ length: 40 }, (_, j) => 300 + ((j * 7919) % 30000))];
    const grpc = await grpcEmbed(cluster.file.coordinator, { inputs: [{ text }, { text: 'Paris' }, { tokenIds: { ids } }] });
    calls++;
    const want = grpc.embeddings.map((e) => e.values);
    assert.equal(want[0].length, 64, 'the tiny model\'s hidden size');

    // The client's default: base64 on the wire, decoded to numbers.
    const one = await openai.embeddings.create({ model: 'tiny-mistral', input: text });
    calls++;
    assert.equal(one.object, 'list');
    assert.equal(one.model, 'tiny-mistral');
    assert.deepEqual(one.data.map((d) => [d.object, d.index]), [['embedding', 0]]);
    assertSameBits(one.data[0].embedding, want[0], 'one string (base64)');
    assert.deepEqual(one.usage, { prompt_tokens: grpc.embeddings[0].promptTokens, total_tokens: grpc.embeddings[0].promptTokens });

    const many = await openai.embeddings.create({ model: 'tiny-mistral', input: [text, 'Paris'], encoding_format: 'float' });
    calls++;
    assert.deepEqual(many.data.map((d) => d.index), [0, 1]);
    many.data.forEach((d, i) => assertSameBits(d.embedding, want[i], `strings, input ${i} (float)`));
    assert.equal(many.usage.prompt_tokens, grpc.embeddings[0].promptTokens + grpc.embeddings[1].promptTokens);

    const byIds = await openai.embeddings.create({ model: 'tiny-mistral', input: ids, encoding_format: 'float' });
    calls++;
    assertSameBits(byIds.data[0].embedding, want[2], 'token ids');
    assert.equal(byIds.usage.prompt_tokens, ids.length);
    const nested = await openai.embeddings.create({ model: 'tiny-mistral', input: [ids, ids.slice(0, 5)] });
    calls++;
    assertSameBits(nested.data[0].embedding, want[2], 'arrays of token ids, input 0');
    assert.equal(nested.usage.prompt_tokens, ids.length + 5);
    const norm = Math.hypot(...nested.data[1].embedding);
    assert.ok(Math.abs(norm - 1) < 1e-5, `L2-normalised: ${norm}`);
  });

  test('requests sent at once (batched by the scheduler) get the vectors each gets alone', async () => {
    const texts = ['alpha beta', 'gamma delta epsilon', 'zeta', 'eta theta iota kappa'];
    const alone: number[][] = [];
    for (const text of texts) {
      alone.push((await grpcEmbed(cluster.file.coordinator, { inputs: [{ text }] })).embeddings[0].values);
      calls++;
    }
    const together = await Promise.all(texts.map((input) => openai.embeddings.create({ model: 'tiny-mistral', input })));
    calls += texts.length;
    together.forEach((r, i) => assertSameBits(r.data[0].embedding, alone[i], `concurrent request ${i}`));
  });

  test('bad input: OpenAI errors naming the field, 404, 413; the coordinator serves on; calls are timed and counted', async () => {
    const before = await scrapeMetrics(cluster.file.coordinatorMetrics!);
    const cases: [string | object, number, string | null, RegExp][] = [
      ['{"input": ', 400, null, /not valid JSON/],
      ['[1, 2]', 400, 'body', /JSON object/],
      [{}, 400, 'input', /input is required/],
      [{ input: '' }, 400, 'input', /empty string/],
      [{ input: [] }, 400, 'input', /non-empty/],
      [{ input: 42 }, 400, 'input', /non-empty string/],
      [{ input: ['ok', ''] }, 400, 'input.1', /empty string/],
      [{ input: ['ok', { text: 'x' }] }, 400, 'input.1', /non-empty string or a non-empty array of token ids/],
      [{ input: [[1, 2], [1, -3]] }, 400, 'input.1', /token ids/],
      [{ input: [1, 32000] }, 400, 'input', /token id 32000 is outside the vocabulary/],
      [{ input: [1, ...new Array<number>(4096).fill(300)] }, 400, 'input', /over the model's context/],
      [{ input: 'x', encoding_format: 'int8' }, 400, 'encoding_format', /"float" or "base64"/],
      [{ input: 'x', dimensions: 8 }, 400, 'dimensions', /unsupported field "dimensions"/],
      [{ input: 'x', model: 7 }, 400, 'model', /must be a string/],
      [{ input: 'x', model: 'text-embedding-3-small' }, 404, null, /unknown model/],
      [{ input: 'x'.repeat(6 * DEFAULT_MAX_PROMPT_BYTES + 128 * 1024) }, 413, null, /over \d+ bytes/],
    ];
    for (const [body, status, param, message] of cases) {
      const what = typeof body === 'string' ? body : JSON.stringify(body).slice(0, 80);
      const res = await postJson(cluster, body);
      assert.equal(res.status, status, what);
      assert.equal(res.json.error?.param, param, what);
      assert.match(res.json.error?.message ?? '', message, what);
      assert.equal(res.json.error?.type, 'invalid_request_error', what);
    }
    const bad = await openai.embeddings.create({ model: 'tiny-mistral', input: [''] }).then(() => undefined, (e: unknown) => e);
    assert.ok(bad instanceof OpenAI.BadRequestError && bad.param === 'input.0', String(bad));

    const again = await openai.embeddings.create({ model: 'tiny-mistral', input: 'serves on' });
    calls++;
    assert.equal(again.data[0].embedding.length, 64);
    const after = await scrapeMetrics(cluster.file.coordinatorMetrics!);
    assert.equal(sampleValue(after, 'bora_embedding_seconds_count'), calls, 'every successful call, HTTP or gRPC, is timed');
    const delta = (name: string, labels: Record<string, string>): number => (findSample(after, name, labels)?.value ?? 0) - (findSample(before, name, labels)?.value ?? 0);
    assert.equal(delta('bora_http_responses_total', { endpoint: 'embeddings', status: '400' }), cases.filter((c) => c[1] === 400).length + 1);
    assert.equal(delta('bora_http_responses_total', { endpoint: 'embeddings', status: '200' }), 1);
    assert.equal(delta('bora_requests_total', { outcome: 'invalid' }), cases.length + 1, 'each bad request counts as invalid (a 404 and a 413 too)');
    assert.equal(delta('bora_requests_total', { outcome: 'ok' }), 1);
  });
});
