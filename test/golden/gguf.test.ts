/**
 * GGUF files against their source directories, on the golden prompts: an F32, F16 or BF16 GGUF
 * of a fixture gives bit-identical logits and the same greedy tokens as the directory in the
 * same precision (the fixture itself for BF16, its rewrite for F16 and F32), in one process and
 * split into two stages. A Q8_0, Q4_0 or Q4_K_M file, on the exact quantized kernels
 * (BORA_QUANT_ACTIVATIONS=f32), gives logits within float32 rounding of the float32 path on its
 * own dequantized weights and the same tokens; on the default integer-dot kernels (8-bit
 * activations, llama.cpp's algorithm) logits within the activations' quantization error of it;
 * both bit-identical whole and split.
 */
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { Checkpoint } from '../../common/model/checkpoint';
import { isQuantDtype, toFloat32 } from '../../common/model/dtype';
import { GgufCheckpoint } from '../../common/model/gguf/gguf-checkpoint';
import type { GgufWeightType } from '../../common/model/gguf/gguf-writer';
import { rewriteCheckpoint } from '../../common/model/rewrite';
import type { WeightSource } from '../../common/model/weight-source';
import { firstBitMismatch } from '../support/bits';
import { fixtureDir, loadReference, tempDir, type FixtureName } from '../support/checkpoints';
import { fixtureGguf } from '../support/gguf';
import { nativeSkip, withQuantActivations } from '../support/kernels';
import { greedyBatch, loadPipeline } from '../support/pipeline';

const STEPS = 12;
/** The float types. */
const GGUF_TYPES: readonly GgufWeightType[] = ['BF16', 'F16', 'F32'];

async function directoryIn(t: TestContext, name: FixtureName, type: GgufWeightType): Promise<string> {
  if (type === 'BF16') return fixtureDir(name);
  const dir = await tempDir(t, `${name}-${type}`);
  await rewriteCheckpoint(fixtureDir(name), dir, { dtype: type === 'F16' ? 'f16' : 'f32' });
  return dir;
}

async function run(source: WeightSource, splits: number[], prompts: readonly (readonly number[])[]) {
  const stages = await loadPipeline(source, splits, 'native');
  try {
    return await greedyBatch(stages, prompts, STEPS);
  } finally {
    await Promise.all(stages.map((s) => s.close()));
  }
}

for (const name of ['tiny-mistral', 'tiny-mixtral'] as FixtureName[]) {
  describe(`${name}: GGUF against the directory`, { skip: nativeSkip }, () => {
    const prompts = loadReference(name).cases.map((c) => c.prompt_ids);
    for (const type of GGUF_TYPES) {
      test(`gguf-golden ${type}: bit-identical first logits and the same tokens, whole and split`, async (t) => {
        const dir = await Checkpoint.open(await directoryIn(t, name, type));
        const gguf = await GgufCheckpoint.open(await fixtureGguf(t, name, type));
        for (const splits of [[], [2]]) {
          const expected = await run(dir, splits, prompts);
          const got = await run(gguf, splits, prompts);
          prompts.forEach((_, i) => {
            assert.equal(got.firstLogits[i].length, dir.config.vocabSize, `case ${i}: one row of logits`);
            assert.deepEqual(got.tokens[i], expected.tokens[i], `case ${i}, splits ${JSON.stringify(splits)}`);
            assert.equal(firstBitMismatch(got.firstLogits[i], expected.firstLogits[i]), -1, `case ${i} logits, splits ${JSON.stringify(splits)}`);
          });
        }
      });
    }
  });
}

/** Quantized files: Q4_K_M falls back to Q8_0 for the fixtures' rows (64 and 192 values, not whole 256-blocks). */
const QUANT_GGUF_TYPES: readonly GgufWeightType[] = ['Q8_0', 'Q4_0', 'Q4_K_M'];

/** `source` with every quantized tensor dequantized to float32: the float32 path on the same weights. */
function dequantized(source: WeightSource): WeightSource {
  return {
    config: source.config,
    async readRaw(name, shape) {
      const raw = await source.readRaw(name, shape);
      if (!isQuantDtype(raw.dtype)) return raw;
      return { dtype: 'F32', shape: raw.shape, bytes: new Uint8Array(toFloat32(raw.bytes, raw.dtype).buffer) };
    },
    readF32: (name, shape) => source.readF32(name, shape),
  };
}

for (const name of ['tiny-mistral', 'tiny-mixtral'] as FixtureName[]) {
  describe(`${name}: quantized GGUF against the float32 path on its dequantized weights`, { skip: nativeSkip }, () => {
    const prompts = loadReference(name).cases.map((c) => c.prompt_ids);
    for (const type of QUANT_GGUF_TYPES) {
      test(`gguf-golden ${type}: exact kernels: logits within float32 rounding of the dequantized weights, the same tokens; bit-identical whole and split`, async (t) => {
        const gguf = await GgufCheckpoint.open(await fixtureGguf(t, name, type));
        const { reference, whole, split } = await withQuantActivations('f32', async () => ({
          reference: await run(dequantized(gguf), [], prompts),
          whole: await run(gguf, [], prompts),
          split: await run(gguf, [2], prompts),
        }));
        prompts.forEach((_, i) => {
          assert.deepEqual(whole.tokens[i], reference.tokens[i], `case ${i}: tokens`);
          assert.deepEqual(split.tokens[i], whole.tokens[i], `case ${i}: split tokens`);
          assert.equal(firstBitMismatch(split.firstLogits[i], whole.firstLogits[i]), -1, `case ${i}: split logits bit-identical`);
          const want = reference.firstLogits[i];
          const scale = want.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
          const worst = whole.firstLogits[i].reduce((m, v, j) => Math.max(m, Math.abs(v - want[j])), 0);
          // The kernels sum the dequantized products in another order than the float32 kernels:
          // rounding differences of float32 sums over a few hundred terms, per layer.
          assert.ok(worst <= 1e-5 * scale, `case ${i}: logits differ by ${worst} (scale ${scale})`);
        });
      });

      test(`gguf-golden ${type}: integer-dot kernels: logits within the 8-bit activations' error of the dequantized weights; bit-identical whole and split`, async (t) => {
        const gguf = await GgufCheckpoint.open(await fixtureGguf(t, name, type));
        const reference = await withQuantActivations('f32', () => run(dequantized(gguf), [], prompts));
        const { whole, split } = await withQuantActivations('q8', async () => ({ whole: await run(gguf, [], prompts), split: await run(gguf, [2], prompts) }));
        prompts.forEach((_, i) => {
          assert.deepEqual(split.tokens[i], whole.tokens[i], `case ${i}: split tokens`);
          assert.equal(firstBitMismatch(split.firstLogits[i], whole.firstLogits[i]), -1, `case ${i}: split logits bit-identical`);
          const want = reference.firstLogits[i];
          const scale = want.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
          const worst = whole.firstLogits[i].reduce((m, v, j) => Math.max(m, Math.abs(v - want[j])), 0);
          // Each matrix product rounds its input to 8 bits per 32 values (up to 1/254 of the group's
          // largest value per value, llama.cpp's q8 activations): measured 1-2 % of the logits'
          // scale through the fixtures' layers. The exact path above checks the formats to float32
          // rounding; quant-linear.test.ts checks these kernels against their own algorithm.
          assert.ok(worst <= 5e-2 * scale, `case ${i}: logits differ by ${worst} (scale ${scale})`);
          assert.ok(worst > 1e-5 * scale, `case ${i}: the integer-dot kernels ran (the logits are not those of the exact path)`);
        });
      });
    }
  });
}
