/**
 * Embeddings through the scheduler and a pipeline split over stages (prompt chunks of 16 tokens,
 * several inputs at once, a generation running beside them) against a reference computed here:
 * the whole model in one StageEngine call, its last hidden states through the final RMSNorm in
 * float64, averaged over the tokens and L2-normalised. Also: the vectors have unit norm, differ
 * between inputs, and a prefix cache does not change them. (The hidden states are the same bits
 * however a prompt is chunked; the per-chunk float32 sums are not, hence the tolerance.)
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { StageEngine } from '../../common/engine/stage-engine';
import { Scheduler } from '../../common/generation/scheduler';
import { sequenceId } from '../../common/ids';
import { Checkpoint } from '../../common/model/checkpoint';
import { finalNormSpec } from '../../common/model/weights';
import type { FinalNorm } from '../../worker/prefix-stage';
import { fixtureDir, type FixtureName } from '../support/checkpoints';
import { fixedSource, loadPipeline, maxAbsDiff } from '../support/pipeline';
import { PrefixPipeline, generate, systemPrompt, userTurn } from '../support/prefix-pipeline';

/** The reference: mean over tokens of rmsnorm(h) * w, L2-normalised, all in float64. */
function referenceEmbedding(hidden: Float32Array, tokens: number, norm: FinalNorm): number[] {
  const H = norm.weight.length;
  const mean = new Array<number>(H).fill(0);
  for (let t = 0; t < tokens; t++) {
    const row = hidden.subarray(t * H, (t + 1) * H);
    const rms = Math.sqrt(row.reduce((n, x) => n + x * x, 0) / H + norm.eps);
    for (let i = 0; i < H; i++) mean[i] += ((row[i] / rms) * norm.weight[i]) / tokens;
  }
  const length = Math.sqrt(mean.reduce((n, x) => n + x * x, 0));
  return mean.map((x) => x / length);
}

function embedThrough(scheduler: Scheduler, id: string, promptIds: readonly number[]): Promise<Float32Array> {
  return new Promise((resolve, reject) => scheduler.submitEmbedding({ id: sequenceId(id), promptIds, onEmbedding: resolve, onError: reject }));
}

const cases: { fixture: FixtureName; splits: number[] }[] = [
  { fixture: 'tiny-mistral', splits: [3] },
  { fixture: 'tiny-mixtral', splits: [1, 3] },
];

for (const { fixture, splits } of cases) {
  describe(`embeddings on ${fixture}, stages split at ${splits.join(', ')}`, () => {
    let whole: StageEngine;
    let stages: StageEngine[];
    let norm: FinalNorm;
    const inputs = [systemPrompt(40), [1, 415, 5565, 302, 4843, 349], [...systemPrompt(40), ...userTurn(1, 2)], [1]];

    before(async () => {
      const ckpt = await Checkpoint.open(fixtureDir(fixture));
      [whole] = await loadPipeline(ckpt, []);
      stages = await loadPipeline(ckpt, splits);
      norm = { weight: await ckpt.readF32(finalNormSpec(ckpt.config).name, finalNormSpec(ckpt.config).shape), eps: ckpt.config.rmsNormEps };
    });
    after(async () => {
      for (const s of [whole, ...stages]) await s.close();
    });

    for (const prefixCacheBytes of [0, 64 * 1024 * 1024]) {
      test(`match the in-process reference (prefix cache ${prefixCacheBytes === 0 ? 'off' : 'on'})`, async () => {
        const pipeline = new PrefixPipeline(stages, prefixCacheBytes, 1, norm);
        const scheduler = new Scheduler(fixedSource(pipeline), { maxBatchTokens: 16, maxBatchSequences: 8 });
        const generation = generate(scheduler, 'gen', systemPrompt(30), 5); // batched beside them, never with them
        const vectors = await Promise.all(inputs.map((ids, i) => embedThrough(scheduler, `e${i}`, ids)));
        const again = await embedThrough(scheduler, 'again', inputs[0]); // after its blocks were cached
        assert.equal((await generation).tokens.length, 5);
        for (const [i, ids] of inputs.entries()) {
          const out = await whole.forward({ slices: [{ id: sequenceId(`ref${i}`), startPosition: 0, tokenCount: ids.length, tokenIds: ids }] });
          whole.release(sequenceId(`ref${i}`));
          const expected = referenceEmbedding(out.hidden, ids.length, norm);
          assert.equal(vectors[i].length, whole.config.hiddenSize);
          assert.ok(maxAbsDiff(vectors[i], expected) < 1e-5, `input ${i}: max difference ${maxAbsDiff(vectors[i], expected)}`);
          assert.ok(Math.abs(Math.hypot(...vectors[i]) - 1) < 1e-5, 'unit length');
        }
        assert.ok(maxAbsDiff(vectors[0], vectors[1]) > 1e-2, 'different inputs, different vectors');
        // Alone, the input is cut into other chunks: its float32 chunk sums round differently.
        assert.ok(maxAbsDiff(again, vectors[0]) < 1e-6, 'the same input gives the same vector');
      });
    }
  });
}
