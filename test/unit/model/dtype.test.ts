import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { bf16ToF32, f16ToF32, f32ToBf16Bits, f32ToF16Bits, fromFloat32, toFloat32 } from '../../../common/model/dtype';

const ALL_16_BIT = Uint16Array.from({ length: 65536 }, (_, i) => i);

function bitsOfF32(value: number): number {
  return new Uint32Array(Float32Array.of(value).buffer)[0];
}

describe('bf16', () => {
  test('every non-NaN bf16 value survives bf16 -> f32 -> bf16 exactly; NaN stays NaN', () => {
    const wide = bf16ToF32(ALL_16_BIT);
    for (let h = 0; h < 65536; h++) {
      const isNaN = (h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0;
      if (isNaN) assert.ok(Number.isNaN(wide[h]) && (f32ToBf16Bits(wide[h]) & 0x7fc0) === 0x7fc0, `0x${h.toString(16)}`);
      else assert.equal(f32ToBf16Bits(wide[h]), h, `0x${h.toString(16)}`);
    }
  });

  test('widening is the bits shifted up 16', () => {
    assert.equal(bitsOfF32(bf16ToF32(Uint16Array.of(0x3f80))[0]), 0x3f800000);
    assert.deepEqual([...bf16ToF32(Uint16Array.of(0x3f80, 0xc000, 0x7f80, 0xff80, 0x8000))], [1, -2, Infinity, -Infinity, -0]);
  });

  test('narrowing rounds to nearest, ties to even', () => {
    // bf16 keeps 7 mantissa bits: near 1.0 the step is 2^-7.
    assert.equal(f32ToBf16Bits(1 + 2 ** -8), 0x3f80); // tie, 1.0 is even
    assert.equal(f32ToBf16Bits(1 + 3 * 2 ** -8), 0x3f82); // tie, 1 + 2^-6 is even
    assert.equal(f32ToBf16Bits(1 + 2 ** -8 + 2 ** -20), 0x3f81); // just above the tie
    assert.equal(f32ToBf16Bits(1 + 2 ** -8 - 2 ** -20), 0x3f80); // just below
    assert.equal(f32ToBf16Bits(-(1 + 3 * 2 ** -8)), 0xbf82);
  });

  test('overflow and infinities', () => {
    assert.equal(f32ToBf16Bits(3.4028234663852886e38), 0x7f80); // f32 max rounds up to inf
    assert.equal(f32ToBf16Bits(3.3895313892515355e38), 0x7f7f); // bf16 max is exact
    assert.equal(f32ToBf16Bits(Infinity), 0x7f80);
    assert.equal(f32ToBf16Bits(-Infinity), 0xff80);
  });

  test('subnormals: exact when representable, rounded to even otherwise', () => {
    assert.equal(f32ToBf16Bits(2 ** -133), 0x0001); // smallest bf16 subnormal
    assert.equal(f32ToBf16Bits(2 ** -134), 0x0000); // tie between 0 and 2^-133: 0 is even
    assert.equal(f32ToBf16Bits(3 * 2 ** -134), 0x0002); // tie between 1 and 2 ulps: 2 is even
    assert.equal(f32ToBf16Bits(-(2 ** -133)), 0x8001);
    assert.equal(bf16ToF32(Uint16Array.of(0x0001))[0], 2 ** -133);
    assert.equal(bf16ToF32(Uint16Array.of(0x007f))[0], 127 * 2 ** -133);
  });
});

describe('f16', () => {
  test('every non-NaN f16 value survives f16 -> f32 -> f16 exactly (subnormals, zeros, infinities)', () => {
    const wide = f16ToF32(ALL_16_BIT);
    for (let h = 0; h < 65536; h++) {
      const isNaN = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
      if (isNaN) assert.ok(Number.isNaN(wide[h]) && Number.isNaN(f16ToF32(Uint16Array.of(f32ToF16Bits(wide[h])))[0]), `0x${h.toString(16)}`);
      else assert.equal(f32ToF16Bits(wide[h]), h, `0x${h.toString(16)}`);
    }
  });

  test('known values widen exactly', () => {
    assert.deepEqual(
      [...f16ToF32(Uint16Array.of(0x3c00, 0xc000, 0x7bff, 0x0400, 0x0001, 0x03ff, 0x8000, 0x7c00, 0xfc00))],
      [1, -2, 65504, 2 ** -14, 2 ** -24, 1023 * 2 ** -24, -0, Infinity, -Infinity],
    );
  });

  test('narrowing rounds to nearest, ties to even', () => {
    // f16 keeps 10 mantissa bits: near 1.0 the step is 2^-10.
    assert.equal(f32ToF16Bits(1 + 2 ** -11), 0x3c00);
    assert.equal(f32ToF16Bits(1 + 3 * 2 ** -11), 0x3c02);
    assert.equal(f32ToF16Bits(1 + 2 ** -11 + 2 ** -20), 0x3c01);
    assert.equal(f32ToF16Bits(-(1 + 3 * 2 ** -11)), 0xbc02);
    assert.equal(f32ToF16Bits(2 - 2 ** -11), 0x4000); // tie with 1.999 (odd): the mantissa carry bumps the exponent to 2.0
  });

  test('overflow goes to infinity at the rounding boundary', () => {
    assert.equal(f32ToF16Bits(65504), 0x7bff);
    assert.equal(f32ToF16Bits(65519.99), 0x7bff);
    assert.equal(f32ToF16Bits(65520), 0x7c00); // tie between 65504 and 2^16: 2^16 is even, and overflows
    assert.equal(f32ToF16Bits(1e9), 0x7c00);
    assert.equal(f32ToF16Bits(-1e9), 0xfc00);
    assert.equal(f32ToF16Bits(Infinity), 0x7c00);
    assert.equal(f32ToF16Bits(-Infinity), 0xfc00);
  });

  test('subnormals and underflow', () => {
    assert.equal(f32ToF16Bits(2 ** -24), 0x0001);
    assert.equal(f32ToF16Bits(2 ** -25), 0x0000); // tie with 0: 0 is even
    assert.equal(f32ToF16Bits(2 ** -25 * 1.0001), 0x0001);
    assert.equal(f32ToF16Bits(3 * 2 ** -25), 0x0002); // tie between 1 and 2 ulps
    assert.equal(f32ToF16Bits(5 * 2 ** -25), 0x0002); // tie between 2 and 3 ulps
    assert.equal(f32ToF16Bits(2 ** -14 - 2 ** -25), 0x0400); // tie between largest subnormal and smallest normal
    assert.equal(f32ToF16Bits(2 ** -14), 0x0400);
    assert.equal(f32ToF16Bits(-(2 ** -24)), 0x8001);
    assert.equal(f32ToF16Bits(1e-10), 0x0000);
    assert.equal(f32ToF16Bits(-1e-10), 0x8000);
    assert.equal(f32ToF16Bits(-0), 0x8000);
  });
});

describe('byte-level conversion', () => {
  test('toFloat32 reads little-endian bytes of each dtype, at any byte offset', () => {
    const values = Float32Array.of(1, -2.5, 0.1, 65504, 2 ** -24);
    for (const dtype of ['BF16', 'F16', 'F32'] as const) {
      const bytes = fromFloat32(values, dtype);
      const shifted = new Uint8Array(bytes.byteLength + 1).subarray(1);
      shifted.set(bytes);
      assert.equal(shifted.byteOffset, 1);
      assert.deepEqual(toFloat32(shifted, dtype), toFloat32(bytes, dtype), dtype);
    }
    assert.deepEqual(toFloat32(fromFloat32(values, 'F32'), 'F32'), values);
    assert.deepEqual([...toFloat32(Uint8Array.of(0x80, 0x3f, 0x00, 0xc0), 'BF16')], [1, -2]);
    assert.deepEqual([...toFloat32(Uint8Array.of(0x00, 0x3c, 0x01, 0x00), 'F16')], [1, 2 ** -24]);
  });

  test('fromFloat32 narrows each element with round-to-nearest-even', () => {
    const values = Float32Array.of(1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 3 * 2 ** -11, 1e9);
    assert.deepEqual([...new Uint16Array(fromFloat32(values, 'BF16').buffer)], [0x3f80, 0x3f82, 0x3f80, 0x4e6e]);
    assert.deepEqual([...new Uint16Array(fromFloat32(values, 'F16').buffer)], [0x3c04, 0x3c0c, 0x3c02, 0x7c00]);
  });
});
