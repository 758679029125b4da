/**
 * Fuzzing frame reassembly and the tensor codec: any sequence of chunks, well-formed or not,
 * gives whole frames or typed errors; a frame whose chunks would add up past the reassembly
 * limit is refused as it grows, not buffered; decodeF32 accepts exactly the tensors whose
 * byte length matches their shape.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as fc from 'fast-check';
import { Reassembler } from '../../../common/wire/frames';
import type { WireTensor } from '../../../common/wire/messages';
import { decodeF32 } from '../../../common/wire/tensor-codec';
import { fuzzParameters, typedOrOk } from '../../support/fuzz';

interface Chunk {
  batchId: number;
  planEpoch: number;
  chunkIndex: number;
  chunkCount: number;
  tensor: WireTensor | null;
}

const smallInt = fc.oneof(fc.integer({ min: 0, max: 4 }), fc.integer({ min: -3, max: 2 ** 32 + 3 }), fc.constantFrom(NaN, Infinity, 0.5, 2 ** 53));
const dtype = fc.constantFrom('DTYPE_F32', 'DTYPE_UNSPECIFIED', 'DTYPE_BF16', 'nonsense') as fc.Arbitrary<WireTensor['dtype']>;
const tensor: fc.Arbitrary<WireTensor | null> = fc.option(
  fc.record({
    dtype,
    shape: fc.array(fc.oneof(fc.integer({ min: 0, max: 8 }), smallInt), { maxLength: 4 }),
    data: fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)),
  }),
  { nil: null },
);
const chunk: fc.Arbitrary<Chunk> = fc.record({ batchId: smallInt, planEpoch: smallInt, chunkIndex: smallInt, chunkCount: smallInt, tensor });

/** A well-formed frame cut into chunks, so that the fuzzer also explores near-valid streams. */
const validFrame: fc.Arbitrary<Chunk[]> = fc
  .tuple(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 0, max: 6 }))
  .map(([batchId, count, elems]) =>
    Array.from({ length: count }, (_, i) => ({
      batchId,
      planEpoch: 1,
      chunkIndex: i,
      chunkCount: count,
      tensor: { dtype: 'DTYPE_F32' as const, shape: [elems], data: Buffer.alloc(i === 0 ? elems * 4 : 0) },
    })),
  );
const stream = fc.array(fc.oneof(chunk.map((c) => [c]), validFrame), { maxLength: 12 }).map((parts) => parts.flat());

describe('fuzz: frame reassembly', () => {
  test('any chunk sequence gives frames or typed errors, never more bytes than the limit', () => {
    const limit = 256;
    fc.assert(
      fc.property(stream, (chunks) => {
        const r = new Reassembler<Chunk>((c) => c.tensor, limit);
        for (const c of chunks) {
          const out = typedOrOk(() => r.push(c));
          if (out?.tensor) assert.ok(out.tensor.data.byteLength <= limit);
        }
      }),
      fuzzParameters(1500),
    );
  });

  test('a frame growing past the limit is refused at the chunk that crosses it (regression)', () => {
    const r = new Reassembler<Chunk>((c) => c.tensor, 100);
    const piece = (i: number): Chunk => ({ batchId: 1, planEpoch: 1, chunkIndex: i, chunkCount: 1000, tensor: { dtype: 'DTYPE_F32', shape: [], data: Buffer.alloc(40) } });
    assert.equal(r.push(piece(0)), undefined);
    assert.equal(r.push(piece(1)), undefined);
    assert.throws(() => r.push(piece(2)), /frame 1: chunks add up to more than 100 bytes/);
  });
});

describe('fuzz: tensor codec', () => {
  test('decodeF32 returns exactly shape-many values or a typed error', () => {
    fc.assert(
      fc.property(tensor, fc.option(fc.array(fc.integer({ min: -1, max: 8 }), { maxLength: 3 }), { nil: undefined }), (t, expected) => {
        const out = typedOrOk(() => decodeF32(t, 'fuzz', expected));
        if (out !== undefined) {
          const elements = t!.shape.reduce((a, b) => a * b, 1);
          assert.equal(out.length, elements);
          assert.ok(t!.shape.every((d) => Number.isSafeInteger(d) && d >= 0));
        }
      }),
      fuzzParameters<[WireTensor | null, number[] | undefined]>(1000, [
        // Found by the fuzzer (seed 418385878): a dimension of 2^53 beside a 0 was accepted.
        [{ dtype: 'DTYPE_F32', shape: [0, 2 ** 53], data: Buffer.alloc(0) }, undefined],
        // The same flaw: negative dimensions multiply to a positive count.
        [{ dtype: 'DTYPE_F32', shape: [-1, -1], data: Buffer.alloc(4) }, [-1, -1]],
      ]),
    );
  });
});
