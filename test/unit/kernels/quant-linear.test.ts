/**
 * The native linear kernels on block-quantized weights (common/kernels/quant*.c), in both of their
 * modes: the default integer-dot path (x quantized to 8 bits per 32 values, llama.cpp's q8
 * activations) against a float64 reference of the same algorithm (the dequantized weights times
 * x's 8-bit quantization), and the exact float32 path (BORA_QUANT_ACTIVATIONS=f32) against a
 * float64 reference on the dequantized weights; both within float32 rounding, for every type,
 * shapes that do not fill a tile, accumulation and 1-3 threads; bit-identical results for a row
 * whatever the batch size, the thread count or the order of the rows (batch- and
 * shape-invariance); stacked parts of one type and of mixed types; bad arguments. isa.test.ts
 * reruns this file for AVX2 and portable C.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InvalidArgumentError } from '../../../common/errors';
import { nativeKernels } from '../../../common/kernels/native-kernels';
import { LinearKernels } from '../../../common/kernels/packed-matrix';
import type { RawTensor } from '../../../common/model/checkpoint';
import { f16ToF32, QUANT_BLOCK, type QuantDtype } from '../../../common/model/dtype';
import { dequantize, q4kScaleMin, quantize } from '../../../common/model/quant-formats';
import { nativeSkip, seededValues } from '../../support/kernels';

const TYPES: readonly QuantDtype[] = ['Q8_0', 'Q4_0', 'Q4_K', 'Q6_K'];

/** The kernels' two modes: integer dot products over 8-bit activations (default), exact float32. */
type Mode = 'q8' | 'f32';
const MODES: readonly Mode[] = ['q8', 'f32'];

/** Runs fn with the kernels in `mode` (the addon reads BORA_QUANT_ACTIVATIONS at each call). */
function inMode<T>(mode: Mode, fn: () => T): T {
  const before = process.env.BORA_QUANT_ACTIVATIONS;
  if (mode === 'f32') process.env.BORA_QUANT_ACTIVATIONS = 'f32';
  else delete process.env.BORA_QUANT_ACTIVATIONS;
  try {
    return fn();
  } finally {
    if (before === undefined) delete process.env.BORA_QUANT_ACTIVATIONS;
    else process.env.BORA_QUANT_ACTIVATIONS = before;
  }
}

function quantized(rows: number, cols: number, dtype: QuantDtype, seed: number): { tensor: RawTensor; w: Float32Array; wMagnitude: Float64Array } {
  const bytes = quantize(seededValues(rows * cols, seed), dtype);
  const w = dequantize(bytes, dtype, rows * cols);
  return { tensor: { dtype, shape: [rows, cols], bytes }, w, wMagnitude: termMagnitudes(bytes, dtype, w) };
}

/**
 * Per weight, the magnitude of the terms the integer path multiplies in float32: |w|, except for
 * Q4_K, whose scaled part (d sc) q = w + dmin m and min dmin m are separate products: |w| + 2 dmin m.
 */
function termMagnitudes(bytes: Uint8Array, dtype: QuantDtype, w: Float32Array): Float64Array {
  const out = Float64Array.from(w, Math.abs);
  if (dtype !== 'Q4_K') return out;
  for (let b = 0; b < w.length / 256; b++) {
    const dmin = f16ToF32(Uint16Array.of(bytes[144 * b + 2] | (bytes[144 * b + 3] << 8)))[0];
    for (let j = 0; j < 8; j++) {
      const m = dmin * q4kScaleMin(bytes, 144 * b + 4, j).min;
      for (let l = 0; l < 32; l++) out[256 * b + 32 * j + l] += 2 * m;
    }
  }
  return out;
}

/**
 * x as the integer path sees it: per 32 values d = max |x| / 127 and q = round(x / d) (half away
 * from zero, computed as x * (1 / d) in float32, as quant-q8.c does), returned as q * d.
 */
function q8Activations(x: Float32Array): Float64Array {
  const out = new Float64Array(x.length);
  for (let g = 0; g < x.length / 32; g++) {
    let amax = 0;
    for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(x[32 * g + i]));
    const d = Math.fround(amax / 127);
    const id = amax > 0 ? Math.fround(1 / d) : 0;
    for (let i = 0; i < 32; i++) {
      const v = Math.fround(x[32 * g + i] * id);
      out[32 * g + i] = Math.max(-127, Math.min(127, Math.sign(v) * Math.round(Math.abs(v)))) * d;
    }
  }
  return out;
}

/** out (M, N) = x (M, K) @ w (N, K)^T in float64, and the sum of |terms| per output. */
function reference(x: ArrayLike<number>, w: Float32Array, wMagnitude: Float64Array, M: number, N: number, K: number): { out: Float64Array; magnitude: Float64Array } {
  const out = new Float64Array(M * N);
  const magnitude = new Float64Array(M * N);
  for (let m = 0; m < M; m++)
    for (let n = 0; n < N; n++) {
      let s = 0;
      let a = 0;
      for (let k = 0; k < K; k++) {
        s += x[m * K + k] * w[n * K + k];
        a += Math.abs(x[m * K + k]) * wMagnitude[n * K + k];
      }
      out[m * N + n] = s;
      magnitude[m * N + n] = a;
    }
  return { out, magnitude };
}

/**
 * The float32 path sums exact float32 products, 16 lanes of K/16 terms each plus a 4-level tree:
 * at most (K/16 + 4) * 2^-24 * sum |products| (the standard bound for recursive summation). The
 * integer path sums exact integers, then per 64 values and lane one float32 term (two for Q4_K)
 * whose scale product and multiplication round once each: (K/64 + 4 + 2) * 2^-24 * sum |terms|.
 */
function assertWithinRounding(mode: Mode, actual: Float32Array, ref: { out: Float64Array; magnitude: Float64Array }, K: number, what: string): void {
  const factor = (mode === 'f32' ? K / 16 + 4 + 1 : Math.ceil(K / 64) + 4 + 2) * 2 ** -24;
  for (let i = 0; i < ref.out.length; i++) {
    const bound = factor * ref.magnitude[i] + 1e-30;
    assert.ok(Math.abs(actual[i] - ref.out[i]) <= bound, `${what}: output ${i} is ${actual[i]}, reference ${ref.out[i]} (bound ${bound})`);
  }
}

describe('native quantized linear kernels', { skip: nativeSkip }, () => {
  const kernels = () => nativeKernels()!;

  for (const mode of MODES)
    for (const dtype of TYPES) {
      const block = QUANT_BLOCK[dtype].elements;
      test(`${mode} ${dtype}: products match the reference within float32 rounding, 1-3 threads, with and without accumulation`, () =>
        inMode(mode, () => {
          for (const [M, N, K] of [[1, 1, block], [1, 13, 2 * block], [2, 33, block], [5, 7, 4 * block], [9, 21, 2 * block], [20, 70, block], [1, 129, 2048], [3, 9, 3 * block]]) {
            const { tensor, w, wMagnitude } = quantized(N, K, dtype, N + K);
            const x = seededValues(M * K, M * 31 + K);
            const ref = reference(mode === 'q8' ? q8Activations(x) : x, w, wMagnitude, M, N, K);
            for (const threads of [1, 2, 3]) {
              const k = new LinearKernels(kernels(), threads);
              const packed = k.pack([tensor], K);
              assert.equal(packed.dtype, dtype.toLowerCase());
              assert.equal(packed.panels, tensor.bytes, 'quantized blocks are used as stored, not copied');
              assertWithinRounding(mode, k.apply(x, M, packed), ref, K, `${mode} ${dtype} ${M}x${N}x${K}, ${threads} threads`);
              const base = seededValues(M * N, 5);
              const summed = k.apply(x, M, packed, base.slice());
              const alone = k.apply(x, M, packed);
              for (let i = 0; i < base.length; i++) assert.equal(summed[i], Math.fround(base[i] + alone[i]), `${dtype} accumulated ${i}`);
            }
          }
        }));

      test(`${mode} ${dtype}: a row's outputs are bit-identical alone, in batches of 1-17 rows, in any row order and on 1-3 threads`, () =>
        inMode(mode, () => {
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
        }));
    }

  for (const dtype of TYPES)
    test(`${dtype}: the two modes are different algorithms, each matching only its own reference; a NaN activation gives NaN outputs`, () => {
      const block = QUANT_BLOCK[dtype].elements;
      const [M, N, K] = [2, 16, 2 * block];
      const { tensor, w, wMagnitude } = quantized(N, K, dtype, 21);
      const x = seededValues(M * K, 22);
      const k = new LinearKernels(kernels(), 2);
      const packed = k.pack([tensor], K);
      const q8 = inMode('q8', () => k.apply(x, M, packed));
      const f32 = inMode('f32', () => k.apply(x, M, packed));
      const q8Ref = reference(q8Activations(x), w, wMagnitude, M, N, K);
      const f32Ref = reference(x, w, wMagnitude, M, N, K);
      assertWithinRounding('q8', q8, q8Ref, K, 'q8 mode');
      assertWithinRounding('f32', f32, f32Ref, K, 'f32 mode');
      assert.throws(() => assertWithinRounding('q8', f32, q8Ref, K, 'f32 output against the q8 reference'), /reference/);
      const nan = x.slice();
      nan[3] = Number.NaN;
      const out = inMode('q8', () => k.apply(nan, M, packed));
      assert.ok(out.subarray(0, N).every(Number.isNaN), 'row 0 has a NaN: every output of it is NaN');
      assert.deepEqual(out.subarray(N), q8.subarray(N), 'row 1 is unaffected');
    });

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
