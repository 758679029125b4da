/**
 * ggml's block formats (common/model/quant-formats.ts): dequantization bit for bit on hand-built
 * blocks with known values (edge scales: zero, negative zero, the largest half, negative, half
 * subnormals), quantize -> dequantize error bounds per type, the native quantizers and
 * dequantizers against the TypeScript ones, and a clear error for rows that are not whole blocks.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InvalidArgumentError } from '../../../common/errors';
import { nativeKernels, quantizeRows, quantPackedDtype } from '../../../common/kernels/native-kernels';
import { QUANT_BLOCK, toFloat32, type QuantDtype } from '../../../common/model/dtype';
import { dequantize, quantize, quantizeTensor } from '../../../common/model/quant-formats';
import { nativeSkip, seededValues } from '../../support/kernels';

const TYPES: readonly QuantDtype[] = ['Q8_0', 'Q4_0', 'Q4_K', 'Q6_K'];

/** Half bits of some exactly known values. */
const H = { zero: 0x0000, negZero: 0x8000, one: 0x3c00, half: 0x3800, quarter: 0x3400, negHalf: 0xb800, max: 0x7bff, minSub: 0x0001, sub3: 0x0003, k1024: 0x6400, minNormal: 0x0400 };

function le16(bits: number): number[] {
  return [bits & 255, bits >> 8];
}

/** Normal(0, 1) values from a seed (Box-Muller over seededValues). */
function gaussian(count: number, seed: number): Float32Array {
  const u = seededValues(2 * count, seed);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    const a = (u[2 * i] + 1) / 2 + 1e-9;
    out[i] = Math.sqrt(-2 * Math.log(a)) * Math.cos(Math.PI * (u[2 * i + 1] + 1));
  }
  return out;
}

function assertBits(actual: Float32Array, expected: readonly number[], what: string): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Object.is(actual[i], Math.fround(expected[i])), `${what}: value ${i} is ${actual[i]}, expected ${expected[i]}`);
  }
}

describe('quantized formats: dequantization bit for bit', () => {
  test('Q8_0: value i = d * q[i] for zero, -0, negative, the largest and subnormal half scales', () => {
    const q = Array.from({ length: 32 }, (_, i) => [-128, -1, 0, 1, 127][i % 5] + (i % 5 === 2 ? i : 0));
    const cases: Array<[number, number]> = [[H.half, 0.5], [H.negHalf, -0.5], [H.max, 65504], [H.minSub, 2 ** -24], [H.sub3, 3 * 2 ** -24], [H.zero, 0], [H.negZero, -0]];
    for (const [bits, d] of cases) {
      const block = Uint8Array.from([...le16(bits), ...q.map((v) => v & 255)]);
      // 0 * negative q is -0 in float32, as in C; subnormal half scales give exact small values.
      assertBits(dequantize(block, 'Q8_0', 32), q.map((v) => d * v), `d = ${d}`);
    }
    // The largest magnitude: 65504 * -128 = -8384512, exact.
    assert.equal(dequantize(Uint8Array.from([...le16(H.max), 128, ...new Array(31).fill(0)]), 'Q8_0', 32)[0], -8384512);
  });

  test('Q4_0: value j = d * (low nibble - 8), value j + 16 = d * (high nibble - 8)', () => {
    const qs = Array.from({ length: 16 }, (_, j) => (j % 16) | ((15 - j) << 4));
    for (const [bits, d] of [[H.one, 1], [H.negHalf, -0.5], [H.minSub, 2 ** -24], [H.max, 65504]] as Array<[number, number]>) {
      const out = dequantize(Uint8Array.from([...le16(bits), ...qs]), 'Q4_0', 32);
      const expected = [...qs.map((b) => d * ((b & 15) - 8)), ...qs.map((b) => d * ((b >> 4) - 8))];
      assertBits(out, expected, `d = ${d}`);
    }
  });

  // Sub-block scales and mins, hand-packed into ggml's 12 bytes (the high sub-blocks 4-7 spread
  // over a nibble and the top bits of two other bytes).
  const SC = [1, 2, 3, 4, 63, 40, 17, 33];
  const MN = [0, 5, 10, 63, 1, 2, 48, 7];
  const SCALES = [193, 130, 67, 132, 0, 5, 202, 63, 31, 40, 1, 113];
  // qs[32g + l]: low nibble l % 16 (sub-block 2g), high nibble 15 - l % 16 (sub-block 2g + 1).
  const QS = Array.from({ length: 128 }, (_, i) => (i % 16) | ((15 - (i % 16)) << 4));
  const q4kQuant = (e: number): number => (e % 64 < 32 ? (e % 64) % 16 : 15 - ((e % 64) - 32) % 16);

  test('Q4_K: value = (d * sc) * q - (dmin * m) with 6-bit scales and mins packed in 12 bytes', () => {
    const block = Uint8Array.from([...le16(H.one), ...le16(H.half), ...SCALES, ...QS]);
    const expected = Array.from({ length: 256 }, (_, e) => SC[e >> 5] * q4kQuant(e) - 0.5 * MN[e >> 5]);
    assertBits(dequantize(block, 'Q4_K', 256), expected, 'd = 1, dmin = 0.5');
  });

  test('Q4_K: the subtraction rounds once to float32 (large d, tiny dmin); subnormal and zero scales', () => {
    const big = dequantize(Uint8Array.from([...le16(H.k1024), ...le16(H.minNormal), ...SCALES, ...QS]), 'Q4_K', 256);
    const expected = Array.from({ length: 256 }, (_, e) => Math.fround(1024 * SC[e >> 5] * q4kQuant(e) - 2 ** -14 * MN[e >> 5]));
    assertBits(big, expected, 'd = 1024, dmin = 2^-14');
    assert.equal(big[4 * 32 + 15], 1024 * 63 * 15); // 967680 - 2^-14: the min is below half an ulp
    const tiny = dequantize(Uint8Array.from([...le16(H.minSub), ...le16(H.zero), ...SCALES, ...QS]), 'Q4_K', 256);
    assertBits(tiny, Array.from({ length: 256 }, (_, e) => 2 ** -24 * SC[e >> 5] * q4kQuant(e) - 0 * MN[e >> 5]), 'd = 2^-24, dmin = 0');
  });

  /** Q6_K block bytes for 6-bit values u (0..63), int8 scales and half d, from the layout. */
  function q6kBlock(u: readonly number[], scales: readonly number[], dBits: number): Uint8Array {
    const b = new Uint8Array(210);
    for (let e = 0; e < 256; e++) {
      const n = e >> 7, qq = (e & 127) >> 5, l = e & 31;
      b[64 * n + l + 32 * (qq & 1)] |= (u[e] & 15) << (4 * (qq >> 1));
      b[128 + 32 * n + l] |= (u[e] >> 4) << (2 * qq);
    }
    scales.forEach((s, j) => (b[192 + j] = s & 255));
    b.set(le16(dBits), 208);
    return b;
  }

  test('Q6_K: value = (d * scale) * (q - 32), q from 4 bits of ql and 2 of qh, int8 scales', () => {
    const u = Array.from({ length: 256 }, (_, e) => (e * 7) % 64);
    const scales = Array.from({ length: 16 }, (_, j) => (j === 14 ? 127 : j === 15 ? -128 : j % 2 ? -(j + 1) : j + 1));
    for (const [bits, d] of [[H.quarter, 0.25], [H.negHalf, -0.5], [H.minSub, 2 ** -24], [H.max, 65504]] as Array<[number, number]>) {
      const out = dequantize(q6kBlock(u, scales, bits), 'Q6_K', 256);
      assertBits(out, u.map((v, e) => d * scales[e >> 4] * (v - 32)), `d = ${d}`);
    }
    // Hand-checked corners: element 255 has u = 255 * 7 % 64 = 57 and scale -128.
    assert.equal(dequantize(q6kBlock(u, scales, H.quarter), 'Q6_K', 256)[255], 0.25 * -128 * (57 - 32));
  });

  test('toFloat32 dequantizes quantized bytes; a partial block is an error', () => {
    const x = seededValues(64, 3);
    const bytes = quantize(x, 'Q8_0');
    assert.deepEqual(toFloat32(bytes, 'Q8_0'), dequantize(bytes, 'Q8_0', 64));
    assert.throws(() => toFloat32(bytes.subarray(0, 40), 'Q8_0'), InvalidArgumentError);
  });
});

describe('quantized formats: quantizers', () => {
  test('Q8_0 and Q4_0 errors stay within the step their scale implies', () => {
    const x = gaussian(32 * 64, 1);
    for (const dtype of ['Q8_0', 'Q4_0'] as const) {
      const y = dequantize(quantize(x, dtype), dtype, x.length);
      for (let b = 0; b < 64; b++) {
        const block = x.subarray(32 * b, 32 * b + 32);
        const amax = Math.max(...Array.from(block, Math.abs));
        // Q8_0: step amax/127, half a step plus the half-precision scale's rounding (127 * 2^-11 steps).
        // Q4_0: step amax/8; the top code is 7 not 8 on the side opposite the largest value: one step.
        const bound = dtype === 'Q8_0' ? (amax / 127) * (0.5 + 127 * 2 ** -11) : (amax / 8) * (1 + 8 * 2 ** -11);
        for (let i = 0; i < 32; i++) assert.ok(Math.abs(y[32 * b + i] - block[i]) <= bound * (1 + 1e-6), `${dtype} block ${b} value ${i}`);
      }
    }
  });

  test('K-quants: relative RMS error on normal data is small, and ordered Q6_K < Q4_K < Q4_0', () => {
    const x = gaussian(256 * 64, 2);
    const rms = (dtype: QuantDtype): number => {
      const y = dequantize(quantize(x, dtype), dtype, x.length);
      let s = 0;
      for (let i = 0; i < x.length; i++) s += (y[i] - x[i]) ** 2;
      return Math.sqrt(s / x.length);
    };
    const [q8, q4, q4k, q6k] = [rms('Q8_0'), rms('Q4_0'), rms('Q4_K'), rms('Q6_K')];
    // Measured on this data: Q8_0 0.0054, Q6_K 0.0188, Q4_K 0.0724, Q4_0 0.0861 (of a unit standard deviation).
    assert.ok(q8 < 0.007, `Q8_0 ${q8}`);
    assert.ok(q6k < 0.025, `Q6_K ${q6k}`);
    assert.ok(q4k < 0.08, `Q4_K ${q4k}`);
    assert.ok(q6k < q4k && q4k < q4, `Q6_K ${q6k} < Q4_K ${q4k} < Q4_0 ${q4}`);
  });

  test('zero blocks and values on the scale grid quantize exactly; a row that is not whole blocks is an error naming the tensor and type', () => {
    for (const dtype of TYPES) {
      const n = QUANT_BLOCK[dtype].elements;
      assert.ok(dequantize(quantize(new Float32Array(n), dtype), dtype, n).every((v) => v === 0), `${dtype} zeros`);
      assert.throws(
        () => quantizeTensor('model.layers.0.mlp.up_proj.weight', new Float32Array(3 * 48), [3, 48], dtype),
        (e: Error) => e instanceof InvalidArgumentError && e.message.includes('up_proj') && e.message.includes(dtype),
      );
    }
    // Q8_0 with amax = 127 * 2^-10 has d = 2^-10 exactly; Q4_0 with -0.75 the largest has d = 0.09375.
    const grid8 = Float32Array.from({ length: 32 }, (_, i) => (i - 16) * 2 ** -10).fill(127 * 2 ** -10, 0, 1);
    assert.deepEqual(dequantize(quantize(grid8, 'Q8_0'), 'Q8_0', 32), grid8);
    const grid4 = Float32Array.from({ length: 32 }, (_, i) => ((i % 15) - 7) * 0.09375).fill(-0.75, 0, 1);
    assert.deepEqual(dequantize(quantize(grid4, 'Q4_0'), 'Q4_0', 32), grid4);
  });
});

describe('quantized formats: native quantizers and dequantizers', { skip: nativeSkip }, () => {
  const kernels = () => nativeKernels()!;

  test('native dequantize equals the TypeScript definition bit for bit on random blocks', () => {
    for (const dtype of TYPES) {
      const { elements, bytes } = QUANT_BLOCK[dtype];
      const rows = 5;
      const blocks = new Uint8Array(rows * 2 * bytes);
      const noise = seededValues(blocks.length, 11);
      for (let i = 0; i < blocks.length; i++) blocks[i] = Math.floor((noise[i] + 1) * 128) & 255;
      // Keep the half scales finite (exponent bits not all ones): NaN payloads are not the subject.
      const halfAt = dtype === 'Q6_K' ? [208] : dtype === 'Q4_K' ? [0, 2] : [0];
      for (let b = 0; b < rows * 2; b++) for (const o of halfAt) blocks[b * bytes + o + 1] &= 0xbb;
      const native = kernels().dequantize(blocks, quantPackedDtype(dtype), rows, 2);
      const reference = dequantize(blocks, dtype, rows * 2 * elements);
      for (let i = 0; i < reference.length; i++) assert.ok(Object.is(native[i], reference[i]), `${dtype} value ${i}: ${native[i]} vs ${reference[i]}`);
    }
  });

  test('native Q8_0 and Q4_0 quantizers give llama.cpp reference bytes (as the TypeScript ones); K-quants meet the same error bounds', () => {
    const rows = 6, K = 512;
    const x = gaussian(rows * K, 5);
    for (const dtype of TYPES) {
      const native = quantizeRows(kernels(), dtype, x, rows, 2);
      const reference = quantize(x, dtype);
      assert.equal(native.length, reference.length);
      if (dtype === 'Q8_0' || dtype === 'Q4_0') assert.deepEqual(native, reference, dtype);
      const rms = (bytes: Uint8Array): number => {
        const y = dequantize(bytes, dtype, x.length);
        let s = 0;
        for (let i = 0; i < x.length; i++) s += (y[i] - x[i]) ** 2;
        return Math.sqrt(s / x.length);
      };
      assert.ok(rms(native) <= rms(reference) * 1.01, `${dtype}: native ${rms(native)} vs reference ${rms(reference)}`);
    }
  });

  test('bf16 input quantizes as its float32 widening; the result does not depend on the thread count', () => {
    const rows = 7, K = 256;
    const bits = new Uint16Array(rows * K);
    const x = gaussian(rows * K, 9);
    const widened = new Float32Array(rows * K);
    const u32 = new Uint32Array(widened.buffer);
    for (let i = 0; i < bits.length; i++) {
      bits[i] = new Uint32Array(Float32Array.of(x[i]).buffer)[0] >>> 16;
      u32[i] = bits[i] << 16;
    }
    for (const dtype of TYPES) {
      const one = quantizeRows(kernels(), dtype, bits, rows, 1);
      assert.deepEqual(quantizeRows(kernels(), dtype, widened, rows, 1), one, dtype);
      assert.deepEqual(quantizeRows(kernels(), dtype, bits, rows, 3), one, `${dtype} on 3 threads`);
    }
  });

  test('bad arguments throw a RangeError', () => {
    const k = kernels();
    assert.throws(() => k.quantize(new Float32Array(48), 'q8_0', 1, 1), RangeError); // 48 is not whole blocks
    assert.throws(() => k.quantize(new Float32Array(256), 'q4_k', 3, 1), RangeError); // not a multiple of rows
    assert.throws(() => k.quantize(new Float64Array(32) as unknown as Float32Array, 'q8_0', 1, 1), RangeError);
    assert.throws(() => k.quantize(new Float32Array(32), 'q5_0' as 'q8_0', 1, 1), RangeError);
    assert.throws(() => k.dequantize(new Uint8Array(35), 'q8_0', 1, 1), RangeError);
  });
});
