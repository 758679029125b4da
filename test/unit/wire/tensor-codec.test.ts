/**
 * Float32 tensors on the wire: encode then decode gives the same bits for any shape (NaN
 * payloads, -0 and infinities included), decode copies out of whatever buffer gRPC handed over
 * (any offset, shared pools), and a tensor whose dtype, byte length or shape is wrong is refused
 * with InvalidArgumentError naming what was expected.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InvalidArgumentError } from '../../../common/errors';
import { decodeF32, encodeF32 } from '../../../common/wire/tensor-codec';

type Tensor = ReturnType<typeof encodeF32>;

/** A small deterministic generator (xorshift32), so failures reproduce. */
function generator(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

/** Random float32 bit patterns: every kind of value, NaNs with payloads included. */
function randomBits(next: () => number, n: number): Float32Array {
  const bits = new Uint32Array(n);
  for (let i = 0; i < n; i++) bits[i] = next();
  return new Float32Array(bits.buffer);
}

function bitsOf(a: Float32Array): number[] {
  return [...new Uint32Array(a.buffer, a.byteOffset, a.length)];
}

function isInvalid(message: RegExp) {
  return (err: unknown) => err instanceof InvalidArgumentError && err.code === 'INVALID_ARGUMENT' && message.test(err.message);
}

describe('encodeF32 / decodeF32 round trip', () => {
  test('random shapes and bit patterns come back bit for bit', () => {
    const next = generator(12345);
    for (let trial = 0; trial < 200; trial++) {
      const rank = next() % 4; // 0..3: a scalar, a vector, a matrix, a 3-d tensor
      const shape = Array.from({ length: rank }, () => next() % 6); // sizes 0..5, empty tensors included
      const n = shape.reduce((a, b) => a * b, 1);
      const values = randomBits(next, n);
      const wire = encodeF32(values, shape);
      assert.equal(wire.dtype, 'DTYPE_F32');
      assert.deepEqual(wire.shape, shape);
      assert.equal(wire.data.byteLength, n * 4);
      const back = decodeF32(wire, 't', shape);
      assert.equal(back.length, n);
      assert.deepEqual(bitsOf(back), bitsOf(values), `trial ${trial}, shape [${shape}]`);
    }
  });

  test('special values keep their bits', () => {
    const values = new Float32Array([0, -0, Infinity, -Infinity, NaN, 1.5, -3.25, 3.4028234663852886e38, 1.401298464324817e-45]);
    const back = decodeF32(encodeF32(values, [values.length]), 't');
    assert.deepEqual(bitsOf(back), bitsOf(values));
    assert.ok(Object.is(back[1], -0));
  });

  test('encoding a view carries only the view, and the shape is copied', () => {
    const whole = new Float32Array([1, 2, 3, 4, 5, 6]);
    const shape = [2, 2];
    const wire = encodeF32(whole.subarray(1, 5), shape);
    shape[0] = 99;
    assert.deepEqual(wire.shape, [2, 2]);
    assert.deepEqual([...decodeF32(wire, 'view')], [2, 3, 4, 5]);
  });

  test('decode reads a buffer at an unaligned offset and owns its result', () => {
    const values = new Float32Array([1.25, -2.5, 1e-3, 7]);
    const pool = Buffer.alloc(3 + values.byteLength);
    Buffer.from(values.buffer).copy(pool, 3);
    const data = pool.subarray(3);
    const back = decodeF32({ dtype: 'DTYPE_F32', shape: [4], data }, 'pooled');
    assert.deepEqual([...back], [...values]);
    assert.equal(back.byteOffset, 0);
    pool.fill(0);
    assert.deepEqual([...back], [...values]);
  });

  test('-1 in the expected shape matches any size of that dimension', () => {
    const wire = encodeF32(new Float32Array(6), [3, 2]);
    assert.equal(decodeF32(wire, 't', [-1, 2]).length, 6);
    assert.equal(decodeF32(wire, 't', [3, -1]).length, 6);
    assert.equal(decodeF32(wire, 't', [-1, -1]).length, 6);
  });
});

describe('decodeF32 refuses malformed tensors', () => {
  const f32 = (shape: number[], bytes: number): Tensor => ({ dtype: 'DTYPE_F32', shape, data: Buffer.alloc(bytes) });
  const cases: { name: string; tensor: Tensor | null | undefined; expected?: number[]; message: RegExp }[] = [
    { name: 'a missing tensor (null)', tensor: null, message: /^x: tensor missing$/ },
    { name: 'a missing tensor (undefined)', tensor: undefined, message: /^x: tensor missing$/ },
    { name: 'dtype F16', tensor: { dtype: 'DTYPE_F16', shape: [2], data: Buffer.alloc(4) }, message: /^x: dtype DTYPE_F16 is not supported here \(expected DTYPE_F32\)$/ },
    { name: 'dtype BF16', tensor: { dtype: 'DTYPE_BF16', shape: [2], data: Buffer.alloc(4) }, message: /dtype DTYPE_BF16 is not supported/ },
    { name: 'an unspecified dtype', tensor: { dtype: 'DTYPE_UNSPECIFIED', shape: [1], data: Buffer.alloc(4) }, message: /dtype DTYPE_UNSPECIFIED is not supported/ },
    { name: 'one byte short', tensor: f32([2, 3], 23), message: /^x: shape \[2, 3\] needs 24 bytes, got 23$/ },
    { name: 'one element over', tensor: f32([2, 3], 28), message: /needs 24 bytes, got 28/ },
    { name: 'bytes for an empty shape', tensor: f32([0, 3], 4), message: /shape \[0, 3\] needs 0 bytes, got 4/ },
    { name: 'no bytes for a scalar', tensor: f32([], 0), message: /shape \[\] needs 4 bytes, got 0/ },
    { name: 'another rank than expected', tensor: f32([6], 24), expected: [2, 3], message: /^x: shape \[6\] where \[2, 3\] was expected$/ },
    { name: 'a transposed shape', tensor: f32([3, 2], 24), expected: [2, 3], message: /shape \[3, 2\] where \[2, 3\] was expected/ },
    { name: 'a wrong fixed dimension beside a wildcard', tensor: f32([3, 2], 24), expected: [-1, 3], message: /shape \[3, 2\] where \[-1, 3\] was expected/ },
  ];
  for (const c of cases) {
    test(c.name, () => {
      assert.throws(() => decodeF32(c.tensor, 'x', c.expected), isInvalid(c.message));
    });
  }
});
