/**
 * A whole model on quantized weights: a random Mistral-shaped checkpoint with dimensions that are
 * multiples of 256 (so every K-quant applies), quantized in memory (test/support/quantized-source.ts)
 * with a Q4_K_M-like mix (v and down in Q6_K: qkv stacks mixed types) and with each single type.
 * The native engine on the quantized weights gives the logits the native engine gives on the same
 * values dequantized to float32, within float32 rounding, and stays batch- and shape-invariant.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { StageEngine } from '../../../common/engine/stage-engine';
import { sequenceId } from '../../../common/ids';
import { Checkpoint } from '../../../common/model/checkpoint';
import { makeModel } from '../../../common/model/make-model';
import type { WeightSource } from '../../../common/model/weight-source';
import { makeTempDir, type TempDir } from '../../support/checkpoints';
import { nativeSkip, withQuantActivations } from '../../support/kernels';
import { everyMatrix, q4kMix, QuantizedSource, type QuantTypeChooser } from '../../support/quantized-source';

const PROMPT = [5, 17, 200, 3, 99, 42, 7, 128, 250, 1];

async function logitsOf(source: WeightSource, prompt: readonly number[], tokenByToken = false): Promise<Float32Array> {
  const engine = await StageEngine.load(source, { start: 0, end: source.config.numLayers }, { compute: { threads: 2, linear: 'native' } });
  const id = sequenceId('q');
  if (!tokenByToken) return (await engine.forward({ slices: [{ id, startPosition: 0, tokenCount: prompt.length, tokenIds: [...prompt] }] })).logits!;
  let logits: Float32Array | undefined;
  for (let i = 0; i < prompt.length; i++) logits = (await engine.forward({ slices: [{ id, startPosition: i, tokenCount: 1, tokenIds: [prompt[i]] }] })).logits!;
  return logits!;
}

function maxAbs(a: Float32Array): number {
  return a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

describe('a model on quantized weights', { skip: nativeSkip }, () => {
  let ckpt: Checkpoint;
  let dir: TempDir;
  before(async () => {
    dir = await makeTempDir('quant-model');
    await makeModel({ arch: 'mistral', hiddenSize: 256, numLayers: 2, numHeads: 4, numKvHeads: 2, intermediateSize: 512, vocabSize: 512, dtype: 'bf16', seed: 7, outDir: dir.path });
    ckpt = await Checkpoint.open(dir.path);
  });
  after(() => dir?.remove());

  const choosers: Array<[string, QuantTypeChooser]> = [['Q4_K_M mix', q4kMix], ['Q8_0', everyMatrix('Q8_0')], ['Q4_0', everyMatrix('Q4_0')], ['Q4_K', everyMatrix('Q4_K')], ['Q6_K', everyMatrix('Q6_K')]];
  for (const [name, chooser] of choosers) {
    test(`${name}: exact kernels: logits equal those of the float32 dequantized weights within float32 rounding`, async () => {
      const { quantized, reference, original } = await withQuantActivations('f32', async () => ({
        quantized: await logitsOf(new QuantizedSource(ckpt, chooser), PROMPT),
        reference: await logitsOf(new QuantizedSource(ckpt, chooser, { dequantized: true }), PROMPT),
        original: await logitsOf(ckpt, PROMPT),
      }));
      // Both runs compute float32 sums of the same exact products in different orders: through two
      // layers the differences stay far below 1e-4 of the logits' scale (measured: 6e-7).
      const scale = maxAbs(reference);
      assert.ok(maxDiff(quantized, reference) <= 1e-4 * scale, `${name}: ${maxDiff(quantized, reference)} vs scale ${scale}`);
      // The quantized weights were used: the logits differ from the bf16 model's by far more.
      assert.ok(maxDiff(quantized, original) > 100 * maxDiff(quantized, reference), `${name}: quantization left the logits unchanged`);
    });

    test(`${name}: integer-dot kernels: logits within the 8-bit activations' error of the dequantized weights`, async () => {
      const quantized = await withQuantActivations('q8', () => logitsOf(new QuantizedSource(ckpt, chooser), PROMPT));
      const reference = await withQuantActivations('f32', () => logitsOf(new QuantizedSource(ckpt, chooser, { dequantized: true }), PROMPT));
      // Every product rounds its input to 8 bits per 32 values (llama.cpp's q8 activations):
      // measured 0.8-1.1 % of the logits' scale through two layers.
      const scale = maxAbs(reference);
      assert.ok(maxDiff(quantized, reference) <= 3e-2 * scale, `${name}: ${maxDiff(quantized, reference)} vs scale ${scale}`);
      assert.ok(maxDiff(quantized, reference) > 1e-4 * scale, `${name}: the integer-dot kernels ran`);
    });
  }

  test('Q4_K_M mix: prefill in one call and token-by-token decode give bit-identical logits', async () => {
    const source = new QuantizedSource(ckpt, q4kMix);
    assert.deepEqual(await logitsOf(source, PROMPT, true), await logitsOf(source, PROMPT));
  });
});
