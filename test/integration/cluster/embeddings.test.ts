/**
 * The Embed RPC on a real cluster (`bora up`, two stage workers): token-id and text inputs give
 * the in-process reference (the whole model in one engine call, its last hidden states through
 * the final RMSNorm, averaged, L2-normalised) within float32 rounding; bad inputs get
 * INVALID_ARGUMENT and the coordinator serves on; each call is counted in bora_embedding_seconds.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { status as Status, type ServiceError } from '@grpc/grpc-js';
import { inferenceClient } from '../../../cli/inference-client';
import { sampleValue, scrapeMetrics } from '../../../common/metrics/exposition';
import { Checkpoint } from '../../../common/model/checkpoint';
import { finalNormSpec } from '../../../common/model/weights';
import { sequenceId } from '../../../common/ids';
import type { EmbedReply__Output } from '../../../common/wire/generated/bora/v1/EmbedReply';
import type { EmbedRequest } from '../../../common/wire/generated/bora/v1/EmbedRequest';
import { loadTokenizer } from '../../../common/tokenizer/load-tokenizer';
import { fixtureDir } from '../../support/checkpoints';
import { startCluster } from '../../support/cluster';
import { loadPipeline, maxAbsDiff } from '../../support/pipeline';

const MODEL = fixtureDir('tiny-mistral');

function embed(address: string, request: EmbedRequest): Promise<EmbedReply__Output> {
  const client = inferenceClient(address);
  return new Promise<EmbedReply__Output>((resolve, reject) =>
    client.embed(request, { deadline: Date.now() + 60_000 }, (err: ServiceError | null, reply?: EmbedReply__Output) => (err ? reject(err) : resolve(reply!))),
  ).finally(() => client.close());
}

async function reference(inputs: readonly (readonly number[])[]): Promise<number[][]> {
  const ckpt = await Checkpoint.open(MODEL);
  const c = ckpt.config;
  const weight = await ckpt.readF32(finalNormSpec(c).name, finalNormSpec(c).shape);
  const [engine] = await loadPipeline(ckpt, []);
  try {
    const out: number[][] = [];
    for (const [i, ids] of inputs.entries()) {
      const { hidden } = await engine.forward({ slices: [{ id: sequenceId(`r${i}`), startPosition: 0, tokenCount: ids.length, tokenIds: ids }] });
      const H = c.hiddenSize;
      const mean = new Array<number>(H).fill(0);
      for (let t = 0; t < ids.length; t++) {
        const row = hidden.subarray(t * H, (t + 1) * H);
        const rms = Math.sqrt(row.reduce((n, x) => n + x * x, 0) / H + c.rmsNormEps);
        for (let j = 0; j < H; j++) mean[j] += (row[j] / rms) * weight[j] / ids.length;
      }
      const length = Math.hypot(...mean);
      out.push(mean.map((x) => x / length));
    }
    return out;
  } finally {
    await engine.close();
  }
}

describe('Embed on a local cluster', () => {
  test('ids and text inputs match the in-process reference; bad input is INVALID_ARGUMENT; calls are timed', async (t) => {
    const cluster = await startCluster(t, MODEL, 2);
    const address = cluster.file.coordinator;
    const text = 'The capital of France is';
    const textIds = (await loadTokenizer(MODEL, (await Checkpoint.open(MODEL)).config)).encode(text, { addBos: true });
    const ids = [1, ...Array.from({ length: 70 }, (_, j) => 300 + ((j * 7919) % 30000))];
    const reply = await embed(address, { inputs: [{ tokenIds: { ids } }, { text }] });
    const expected = await reference([ids, textIds]);
    assert.equal(reply.embeddings.length, 2);
    reply.embeddings.forEach((e, i) => {
      assert.ok(maxAbsDiff(e.values, expected[i]) < 1e-5, `input ${i}: max difference ${maxAbsDiff(e.values, expected[i])}`);
    });
    assert.deepEqual(reply.embeddings.map((e) => e.promptTokens), [ids.length, textIds.length]);
    assert.equal(reply.promptTokens, ids.length + textIds.length);

    const bad: { request: EmbedRequest; message: RegExp }[] = [
      { request: { inputs: [] }, message: /at least one input/ },
      { request: { inputs: [{ tokenIds: { ids: [] } }] }, message: /input 0 is empty/ },
      { request: { inputs: [{ tokenIds: { ids: [1, 32000] } }] }, message: /token id 32000 is outside the vocabulary/ },
      { request: { inputs: [{}] }, message: /sets neither text nor token_ids/ },
    ];
    for (const b of bad) {
      await assert.rejects(embed(address, b.request), (err: ServiceError) => err.code === Status.INVALID_ARGUMENT && b.message.test(err.details));
    }
    const again = await embed(address, { inputs: [{ tokenIds: { ids } }] });
    assert.ok(maxAbsDiff(again.embeddings[0].values, expected[0]) < 1e-5, 'serves on after bad input');
    const metrics = await scrapeMetrics(cluster.file.coordinatorMetrics!);
    assert.equal(sampleValue(metrics, 'bora_embedding_seconds_count'), 2);
  });
});
