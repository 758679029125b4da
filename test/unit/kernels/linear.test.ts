/**
 * The native matrix kernels against a plain reference: every stored precision, shapes that do
 * not fill a panel or a tile, accumulation, several threads; a row's result does not depend on
 * the rows beside it; bad arguments throw instead of reading out of bounds.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { nativeKernels, type PackedDtype } from '../../../common/kernels/native-kernels';
import { LinearKernels } from '../../../common/kernels/packed-matrix';
import type { RawTensor } from '../../../common/model/checkpoint';
import { nativeSkip, seededValues } from '../../support/kernels';
import { fromFloat32, toFloat32, type StorageDtype } from '../../../common/model/dtype';

const values = (count: number, seed: number): Float32Array => seededValues(count, seed);

function tensor(w: Float32Array, rows: number, cols: number, dtype: StorageDtype): RawTensor {
  return { dtype, shape: [rows, cols], bytes: fromFloat32(w, dtype) };
}

/** out (M, N) = x (M, K) @ w (N, K)^T in float64. */
function reference(x: Float32Array, w: Float32Array, M: number, N: number, K: number): Float64Array {
  const out = new Float64Array(M * N);
  for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
    let s = 0;
    for (let k = 0; k < K; k++) s += x[m * K + k] * w[n * K + k];
    out[m * N + n] = s;
  }
  return out;
}

function maxRelativeError(actual: ArrayLike<number>, expected: ArrayLike<number>, scale: number): number {
  let worst = 0;
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]) / scale);
  return worst;
}

describe('native linear kernels', { skip: nativeSkip }, () => {
  const kernels = () => nativeKernels()!;

  for (const dtype of ['F32', 'BF16', 'F16'] as StorageDtype[]) {
    test(`${dtype} weights: products match the reference for odd shapes, 1-3 threads, with and without accumulation`, () => {
      for (const [M, N, K] of [[1, 1, 1], [1, 13, 37], [2, 33, 64], [7, 100, 129], [9, 16, 300], [20, 70, 30], [1, 129, 2048]]) {
        for (const threads of [1, 2, 3]) {
          const k = new LinearKernels(kernels(), threads);
          // The reference uses the weights as stored (rounded to the dtype).
          const w = toFloat32(fromFloat32(values(N * K, N + K), dtype), dtype);
          const x = values(M * K, M * 31 + K);
          const packed = k.pack([tensor(w, N, K, dtype)], K);
          assert.equal(packed.dtype, dtype.toLowerCase() as PackedDtype);
          const expected = reference(x, w, M, N, K);
          const scale = Math.sqrt(K); // float32 sums of K terms of order 1: errors grow like sqrt(K) x 2^-24
          assert.ok(maxRelativeError(k.apply(x, M, packed), expected, scale) < 1e-5, `${M}x${N}x${K}, ${threads} threads`);
          const base = values(M * N, 5);
          const summed = k.apply(x, M, packed, base.slice());
          assert.ok(maxRelativeError(summed, expected.map((v, i) => v + base[i]), scale) < 1e-5, `${M}x${N}x${K} accumulated`);
        }
      }
    });
  }

  test('a row gives bit-identical results alone or in a batch of any size (batch-invariant)', () => {
    const k = new LinearKernels(kernels(), 2);
    const [N, K] = [300, 520];
    const packed = k.pack([tensor(values(N * K, 1), N, K, 'BF16')], K);
    const rows = values(17 * K, 2);
    const alone = Array.from({ length: 17 }, (_, m) => k.apply(rows.subarray(m * K, (m + 1) * K), 1, packed));
    for (const M of [2, 5, 8, 17]) {
      const batch = k.apply(rows.subarray(0, M * K), M, packed);
      for (let m = 0; m < M; m++) assert.deepEqual(batch.subarray(m * N, (m + 1) * N), alone[m], `row ${m} of ${M}`);
    }
  });

  test('stacked matrices (q, k, v) equal the matrices applied one by one; mixed precisions stack as float32', () => {
    const k = new LinearKernels(kernels(), 2);
    const K = 48;
    const parts = [tensor(values(32 * K, 7), 32, K, 'BF16'), tensor(values(8 * K, 8), 8, K, 'BF16'), tensor(values(8 * K, 9), 8, K, 'F32')];
    const x = values(3 * K, 10);
    const stacked = k.pack(parts, K);
    assert.equal(stacked.dtype, 'f32');
    assert.equal(stacked.rows, 48);
    const out = k.apply(x, 3, stacked);
    let offset = 0;
    for (const part of parts) {
      const alone = k.apply(x, 3, k.pack([part], K));
      const n = part.shape[0];
      for (let m = 0; m < 3; m++) assert.deepEqual(out.subarray(m * 48 + offset, m * 48 + offset + n), alone.subarray(m * n, (m + 1) * n));
      offset += n;
    }
  });

  test('siluMul computes silu(gate) * up per row', () => {
    const k = new LinearKernels(kernels(), 1);
    const gateUp = values(3 * 2 * 5, 11).map((v) => v * 8);
    const out = k.siluMul(gateUp, 3);
    for (let r = 0; r < 3; r++) for (let i = 0; i < 5; i++) {
      const g = gateUp[r * 10 + i];
      const expected = (g / (1 + Math.exp(-g))) * gateUp[r * 10 + 5 + i];
      assert.ok(Math.abs(out[r * 5 + i] - expected) <= 1e-5 * Math.max(1, Math.abs(expected)));
    }
  });

  test('bad arguments throw a RangeError and leave nothing half-written', () => {
    const native = kernels();
    const panels = native.pack(values(16 * 4, 1), 'f32', 16, 1);
    const out = new Float32Array(16).fill(7);
    assert.throws(() => native.linear(new Float32Array(5), panels, 'f32', 16, out, 1, false, 1), RangeError); // K = 5 does not match
    assert.throws(() => native.linear(new Float32Array(4), panels, 'f32', 16, new Float32Array(15), 1, false, 1), RangeError);
    assert.throws(() => native.linear(new Float32Array(4), panels, 'bf16', 16, out, 1, false, 1), RangeError); // f32 panels as bf16
    assert.throws(() => native.linear(new Float64Array(4) as unknown as Float32Array, panels, 'f32', 16, out, 1, false, 1), RangeError);
    assert.throws(() => native.linear(new Float32Array(4), panels, 'f8' as PackedDtype, 16, out, 1, false, 1), RangeError);
    assert.throws(() => native.pack(new Float32Array(10), 'f32', 3, 1), RangeError); // 10 values are not 3 rows
    assert.throws(() => native.siluMul(new Float32Array(6), 2, new Float32Array(4)), RangeError);
    assert.ok(out.every((v) => v === 7));
  });
});
