/**
 * The native linear kernels on block-quantized weights (common/kernels/quant*.c): products against
 * a float64 reference on the dequantized weights, for every type, shapes that do not fill a tile,
 * accumulation and 1-3 threads; bit-identical results for a row whatever the batch size, the
 * thread count or the order of the rows (batch- and shape-invariance); stacked parts of one type
 * and of mixed types; bad arguments. isa.test.ts reruns this file for AVX2 and portable C.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InvalidArgumentError } from '../../../common/errors';
import { nativeKernels } from '../../../common/kernels/native-kernels';
import { LinearKernels } from '../../../common/kernels/packed-matrix';
import type { RawTensor } from '../../../common/model/checkpoint';
import { QUANT_BLOCK, type QuantDtype } from '../../../common/model/dtype';
import { dequantize, quantize } from '../../../common/model/quant-formats';
import { nativeSkip, seededValues } from '../../support/kernels';

const TYPES: readonly QuantDtype[] = ['Q8_0', 'Q4_0', 'Q4_K', 'Q6_K'];

function quantized(rows: number, cols: number, dtype: QuantDtype, seed: number): { tensor: RawTensor; w: Float32Array } {
  const bytes = quantize(seededValues(rows * cols, seed), dtype);
  return { tensor: { dtype, shape: [rows, cols], bytes }, w: dequantize(bytes, dtype, rows * cols) };
}

/** out (M, N) = x (M, K) @ w (N, K)^T in float64, and the sum of |products| per output. */
function reference(x: Float32Array, w: Float32Array, M: number, N: number, K: number): { out: Float64Array; magnitude: Float64Array } {
  const out = new Float64Array(M * N);
  const magnitude = new Float64Array(M * N);
  for (let m = 0; m < M; m++)
    for (let n = 0; n < N; n++) {
      let s = 0;
      let a = 0;
      for (let k = 0; k < K; k++) {
        s += x[m * K + k] * w[n * K + k];
        a += Math.abs(x[m * K + k] * w[n * K + k]);
      }
      out[m * N + n] = s;
      magnitude[m * N + n] = a;
    }
  return { out, magnitude };
}

/**
 * The kernels compute each output as a float32 sum of exact float32 products (the dequantized
 * weights are exact), 16 lanes of K/16 terms each plus a 4-level tree: the error of such a sum is
 * at most (K/16 + 4) * 2^-24 * sum |products| (the standard bound for recursive summation).
 */
function assertWithinRounding(actual: Float32Array, ref: { out: Float64Array; magnitude: Float64Array }, K: number, what: string): void {
  const factor = (K / 16 + 4 + 1) * 2 ** -24;
  for (let i = 0; i < ref.out.length; i++) {
    const bound = factor * ref.magnitude[i] + 1e-30;
    assert.ok(Math.abs(actual[i] - ref.out[i]) <= bound, `${what}: output ${i} is ${actual[i]}, reference ${ref.out[i]} (bound ${bound})`);
  }
}

describe('native quantized linear kernels', { skip: nativeSkip }, () => {
  const kernels = () => nativeKernels()!;

  for (const dtype of TYPES) {
    const block = QUANT_BLOCK[dtype].elements;
    test(`${dtype}: products match the dequantized reference within float32 rounding, 1-3 threads, with and without accumulation`, () => {
      for (const [M, N, K] of [[1, 1, block], [1, 13, 2 * block], [2, 33, block], [5, 7, 4 * block], [9, 21, 2 * block], [20, 70, block], [1, 129, 2048]]) {
        const { tensor, w } = quantized(N, K, dtype, N + K);
        const x = seededValues(M * K, M * 31 + K);
        const ref = reference(x, w, M, N, K);
        for (const threads of [1, 2, 3]) {
          const k = new LinearKernels(kernels(), threads);
          const packed = k.pack([tensor], K);
          assert.equal(packed.dtype, dtype.toLowerCase());
          assert.equal(packed.panels, tensor.bytes, 'quantized blocks are used as stored, not copied');
          assertWithinRounding(k.apply(x, M, packed), ref, K, `${dtype} ${M}x${N}x${K}, ${threads} threads`);
          const base = seededValues(M * N, 5);
          const summed = k.apply(x, M, packed, base.slice());
          const alone = k.apply(x, M, packed);
          for (let i = 0; i < base.length; i++) assert.equal(summed[i], Math.fround(base[i] + alone[i]), `${dtype} accumulated ${i}`);
        }
      }
    });

    test(`${dtype}: a row's outputs are bit-identical alone, in batches of 1-17 rows, in any row order and on 1-3 threads`, () => {
      const [N, K] = [45, 4 * block];
      const { tensor } = quantized(N, K, dtype, 3);
      const rows = seededValues(17 * K, 4);
      const one = new LinearKernels(kernels(), 1);
      const packed = one.pack([tensor], K);
      const alone = Array.from({ length: 17 }, (_, m) => one.apply(rows.subarray(m * K, (m + 1) * K), 1, packed));
      for (const threads of [1, 2, 3]) {
        const k = new LinearKernels(kernels(), threads);
        for (let M = 1; M <= 17; M++) {
          const batch = k.apply(rows.subarray(0, M * K), M, packed);
          for (let m = 0; m < M; m++) assert.deepEqual(batch.subarray(m * N, (m + 1) * N), alone[m], `row ${m} of ${M}, ${threads} threads`);
        }
        // Reversed row order.
        const reversed = new Float32Array(17 * K);
        for (let m = 0; m < 17; m++) reversed.set(rows.subarray(m * K, (m + 1) * K), (16 - m) * K);
        const out = k.apply(reversed, 17, packed);
        for (let m = 0; m < 17; m++) assert.deepEqual(out.subarray((16 - m) * N, (17 - m) * N), alone[m], `reversed row ${m}, ${threads} threads`);
      }
    });
  }

  test('stacked parts of one type are concatenated blocks; parts of mixed types stay separate and give the same outputs', () => {
    const k = new LinearKernels(kernels(), 2);
    const K = 512;
    const q = quantized(32, K, 'Q4_K', 7).tensor;
    const kk = quantized(8, K, 'Q4_K', 8).tensor;
    const v = quantized(8, K, 'Q6_K', 9).tensor;
    const x = seededValues(3 * K, 10);
    const same = k.pack([q, kk], K);
    assert.equal(same.dtype, 'q4_k');
    assert.equal(same.parts, undefined);
    const mixed = k.pack([q, kk, v], K);
    assert.equal(mixed.rows, 48);
    assert.deepEqual(mixed.parts?.map((p) => [p.dtype, p.rows]), [['q4_k', 40], ['q6_k', 8]]);
    const out = k.apply(x, 3, mixed);
    const base = seededValues(3 * 48, 12);
    const accumulated = k.apply(x, 3, mixed, base.slice());
    let offset = 0;
    for (const part of [q, kk, v]) {
      const alone = k.apply(x, 3, k.pack([part], K));
      const n = part.shape[0];
      for (let m = 0; m < 3; m++) {
        assert.deepEqual(out.subarray(m * 48 + offset, m * 48 + offset + n), alone.subarray(m * n, (m + 1) * n));
        for (let j = 0; j < n; j++) assert.equal(accumulated[m * 48 + offset + j], Math.fround(base[m * 48 + offset + j] + alone[m * n + j]));
      }
      offset += n;
    }
  });

  test('a quantized matrix whose rows are not whole blocks, or whose bytes do not match its shape, is refused', () => {
    const k = new LinearKernels(kernels(), 1);
    assert.throws(() => k.pack([{ dtype: 'Q4_K', shape: [2, 64], bytes: new Uint8Array(2 * 36) }], 64), (e: Error) => e instanceof InvalidArgumentError && /Q4_K/.test(e.message));
    assert.throws(() => k.pack([{ dtype: 'Q8_0', shape: [2, 64], bytes: new Uint8Array(100) }], 64), InvalidArgumentError);
  });

  test('bad arguments throw a RangeError and leave nothing half-written', () => {
    const native = kernels();
    const blocks = quantize(seededValues(4 * 64, 1), 'Q8_0'); // (4, 64)
    const out = new Float32Array(4).fill(7);
    assert.throws(() => native.linear(new Float32Array(32), blocks, 'q8_0', 4, out, 1, false, 1), RangeError); // K = 32: blocks hold K = 64
    assert.throws(() => native.linear(new Float32Array(48), blocks, 'q8_0', 4, out, 1, false, 1), RangeError); // 48 is not whole blocks
    assert.throws(() => native.linear(new Float32Array(64), blocks, 'q4_0', 4, out, 1, false, 1), RangeError); // Q8_0 bytes as Q4_0
    assert.throws(() => native.linear(new Float32Array(64), new Uint16Array(blocks.length / 2), 'q8_0', 4, out, 1, false, 1), RangeError);
    assert.throws(() => native.linear(new Float32Array(64), blocks, 'q8_0', 4, new Float32Array(3), 1, false, 1), RangeError);
    assert.ok(out.every((v) => v === 7));
  });
});
