/**
 * Activation and result frames on the wire: a frame is cut into chunks of at most
 * FRAME_CHUNK_BYTES, the first carrying slices, dtype and shape; a Reassembler puts one stream's
 * chunks back together and refuses, with InvalidArgumentError, chunks that are malformed, out of
 * order, missing, repeated, from another batch or epoch, or that disagree on the chunk count.
 * What comes out is decoded with its byte count checked against the slices.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InvalidArgumentError } from '../../../common/errors';
import { sequenceId } from '../../../common/ids';
import {
  Reassembler,
  decodeResult,
  decodeStageFrame,
  encodeResult,
  encodeStageFrame,
  sliceFromWire,
  sliceToWire,
  type ResultBatch,
  type StageFrame,
} from '../../../common/wire/frames';
import { FRAME_CHUNK_BYTES } from '../../../common/wire/proto';

// The wire types, named through the codec so that these tests follow wherever the types live.
type Activation = ReturnType<typeof encodeStageFrame>[number];
type Result = ReturnType<typeof encodeResult>[number];
type Tensor = NonNullable<Activation['hidden']>;
type WireSlice = ReturnType<typeof sliceToWire>;

const F32 = Float32Array.BYTES_PER_ELEMENT;

/** Distinct, exactly representable values, so equality checks catch any misplaced byte. */
function ramp(n: number, base = 0): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = base + (i % 65_536) - 0.5 * Math.floor(i / 65_536);
  return a;
}

function slice(id: string, startPosition: number, tokenCount: number, tokenIds?: number[]) {
  return { id: sequenceId(id), startPosition, tokenCount, tokenIds };
}

function activationReassembler(): Reassembler<Activation> {
  return new Reassembler<Activation>((f) => f.hidden);
}

/** Feeds every chunk; returns what each push returned. */
function feed<F extends Activation | Result>(r: Reassembler<F>, chunks: readonly F[]) {
  return chunks.map((c) => r.push(c));
}

/** A hand-made chunk with `bytes` bytes of hidden state (the first chunk names an F32 tensor). */
function chunk(batchId: number, chunkIndex: number, chunkCount: number, bytes: number | null, planEpoch = 1): Activation {
  const hidden: Tensor | null =
    bytes === null ? null : chunkIndex === 0 ? { dtype: 'DTYPE_F32', shape: [1, bytes / F32], data: Buffer.alloc(bytes, chunkIndex + 1) } : { dtype: 'DTYPE_UNSPECIFIED', shape: [], data: Buffer.alloc(bytes, chunkIndex + 1) };
  return {
    planEpoch,
    batchId,
    stageIndex: 1,
    chunkIndex,
    chunkCount,
    slices: chunkIndex === 0 ? [{ sequenceId: `s${batchId}`, startPosition: 0, tokenCount: 1, tokenIds: [], prefixKey: '', prefixTokens: 0 }] : [],
    hidden,
    error: '',
    code: 0,
    etcdOutage: false,
    prefixEvicted: [],
    embed: false,
  };
}

describe('encodeStageFrame chunking', () => {
  const H = 256;
  const rowBytes = H * F32;
  // Hidden states of 0, 1 row, exactly one chunk, one byte row over, and several chunks.
  const cases: { name: string; tokens: number; chunks: number }[] = [
    { name: 'one row', tokens: 1, chunks: 1 },
    { name: 'exactly one chunk', tokens: FRAME_CHUNK_BYTES / rowBytes, chunks: 1 },
    { name: 'one row over a chunk', tokens: FRAME_CHUNK_BYTES / rowBytes + 1, chunks: 2 },
    { name: 'two and a half chunks', tokens: (FRAME_CHUNK_BYTES / rowBytes) * 2.5, chunks: 3 },
  ];
  for (const c of cases) {
    test(`${c.name}: ${c.chunks} chunk(s), each at most FRAME_CHUNK_BYTES, reassembled to the same frame`, () => {
      const frame: StageFrame = {
        planEpoch: 7,
        batchId: 42,
        stageIndex: 2,
        slices: [slice('a', 3, c.tokens - (c.tokens > 1 ? 1 : 0)), ...(c.tokens > 1 ? [slice('b', 9, 1)] : [])],
        hidden: ramp(c.tokens * H, 1),
        etcdOutage: true,
      };
      const chunks = encodeStageFrame(frame, H);
      assert.equal(chunks.length, c.chunks);
      assert.equal(chunks.length, Math.max(1, Math.ceil((c.tokens * rowBytes) / FRAME_CHUNK_BYTES)));
      chunks.forEach((ch, i) => {
        assert.equal(ch.chunkIndex, i);
        assert.equal(ch.chunkCount, c.chunks);
        assert.equal(ch.planEpoch, 7);
        assert.equal(ch.batchId, 42);
        assert.ok(ch.hidden!.data.byteLength <= FRAME_CHUNK_BYTES);
        // Only the first chunk carries slices, dtype and shape.
        assert.equal(ch.slices.length, i === 0 ? frame.slices.length : 0);
        assert.equal(ch.hidden!.dtype, i === 0 ? 'DTYPE_F32' : 'DTYPE_UNSPECIFIED');
        assert.deepEqual(ch.hidden!.shape, i === 0 ? [c.tokens, H] : []);
      });
      assert.equal(
        chunks.reduce((n, ch) => n + ch.hidden!.data.byteLength, 0),
        c.tokens * rowBytes,
      );

      const out = feed(activationReassembler(), chunks);
      assert.deepEqual(out.slice(0, -1), new Array(chunks.length - 1).fill(undefined));
      const done = out.at(-1)!;
      assert.equal(done.frame, chunks[0]);
      const decoded = decodeStageFrame(done.frame, done.tensor, H);
      assert.deepEqual(decoded, {
        planEpoch: 7,
        batchId: 42,
        stageIndex: 2,
        slices: frame.slices,
        hidden: frame.hidden,
        error: undefined,
        etcdOutage: true,
      });
    });
  }

  test('a frame without hidden state (into the first stage) is one chunk with no tensor', () => {
    const frame: StageFrame = { planEpoch: 1, batchId: 3, stageIndex: 0, slices: [slice('a', 0, 3, [5, 6, 7])] };
    const chunks = encodeStageFrame(frame, 16);
    assert.equal(chunks.length, 1);
    assert.equal(chunks[0].hidden, null);
    assert.deepEqual(chunks[0].slices, [{ sequenceId: 'a', startPosition: 0, tokenCount: 3, tokenIds: [5, 6, 7], prefixKey: '', prefixTokens: 0 }]);
    const done = activationReassembler().push(chunks[0])!;
    assert.equal(done.tensor, null);
    assert.deepEqual(decodeStageFrame(done.frame, done.tensor, 16), { ...frame, hidden: undefined, error: undefined, etcdOutage: false });
  });

  test("a slice's cached prefix and the first stage's evictions go through (on chunk 0 only)", () => {
    const prefixed = { ...slice('a', 32, 2, [5, 6]), prefix: { key: 'f'.repeat(32), tokens: 32 } };
    const frame: StageFrame = { planEpoch: 1, batchId: 4, stageIndex: 1, slices: [prefixed], hidden: new Float32Array(2 * 16).fill(1), prefixEvicted: ['a'.repeat(32), 'b'.repeat(32)] };
    const chunks = encodeStageFrame(frame, 16);
    const done = activationReassembler().push(chunks[0])!;
    const decoded = decodeStageFrame(done.frame, done.tensor, 16);
    assert.deepEqual(decoded.slices, [prefixed]);
    assert.deepEqual(decoded.prefixEvicted, frame.prefixEvicted);
    const big = encodeStageFrame({ ...frame, hidden: new Float32Array(FRAME_CHUNK_BYTES / 2) }, 16);
    assert.ok(big.length > 1);
    assert.deepEqual(big.slice(1).map((c) => c.prefixEvicted), big.slice(1).map(() => []));
    const empty = { ...chunks[0], prefixEvicted: [''] };
    const again = activationReassembler().push(empty)!;
    assert.throws(() => decodeStageFrame(again.frame, again.tensor, 16), InvalidArgumentError);
  });

  test('an error frame carries its message and gRPC code through', () => {
    const frame: StageFrame = { planEpoch: 2, batchId: 5, stageIndex: 1, slices: [slice('a', 4, 1)], error: { message: 'stage 0 boom', code: 13 } };
    const [wire] = encodeStageFrame(frame, 8);
    assert.equal(wire.error, 'stage 0 boom');
    assert.equal(wire.code, 13);
    const done = activationReassembler().push(wire)!;
    assert.deepEqual(decodeStageFrame(done.frame, done.tensor, 8).error, { message: 'stage 0 boom', code: 13 });
  });
});

describe('Reassembler', () => {
  test('one reassembler takes frame after frame; a single chunk comes back with its own buffer', () => {
    const r = activationReassembler();
    for (let batch = 0; batch < 3; batch++) {
      assert.equal(r.push(chunk(batch, 0, 2, 8)), undefined);
      const done = r.push(chunk(batch, 1, 2, 4))!;
      assert.equal(done.frame.batchId, batch);
      assert.deepEqual([...done.tensor!.data], [1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2]);
      assert.equal(done.tensor!.dtype, 'DTYPE_F32');
      assert.deepEqual(done.tensor!.shape, [1, 2]);
    }
    const single = chunk(9, 0, 1, 12);
    assert.equal(r.push(single)!.tensor!.data, single.hidden!.data);
  });

  // Each row: the chunks pushed, and the push that must fail (earlier ones must not).
  const bad: { name: string; chunks: Activation[]; fails: number; message: RegExp }[] = [
    { name: 'chunk count 0', chunks: [chunk(1, 0, 0, 4)], fails: 0, message: /frame 1: chunk 0 of 0 is malformed/ },
    { name: 'index equal to count', chunks: [chunk(1, 2, 2, 4)], fails: 0, message: /frame 1: chunk 2 of 2 is malformed/ },
    { name: 'index past count', chunks: [chunk(1, 0, 3, 4), chunk(1, 5, 3, 4)], fails: 1, message: /chunk 5 of 3 is malformed/ },
    { name: 'starts mid-frame', chunks: [chunk(1, 1, 3, 4)], fails: 0, message: /frame 1: chunk 1 arrived out of order/ },
    { name: 'out of order', chunks: [chunk(1, 0, 3, 4), chunk(1, 2, 3, 4)], fails: 1, message: /frame 1: chunk 2 arrived out of order/ },
    { name: 'missing middle chunk', chunks: [chunk(1, 0, 4, 4), chunk(1, 1, 4, 4), chunk(1, 3, 4, 4)], fails: 2, message: /chunk 3 arrived out of order/ },
    { name: 'duplicate chunk', chunks: [chunk(1, 0, 3, 4), chunk(1, 1, 3, 4), chunk(1, 1, 3, 4)], fails: 2, message: /chunk 1 arrived out of order/ },
    { name: 'chunk of another batch', chunks: [chunk(1, 0, 3, 4), chunk(2, 1, 3, 4)], fails: 1, message: /frame 2: chunk 1 arrived out of order/ },
    { name: 'chunk of another epoch', chunks: [chunk(1, 0, 3, 4, 1), chunk(1, 1, 3, 4, 2)], fails: 1, message: /chunk 1 arrived out of order/ },
    { name: 'mismatched chunk count (fewer)', chunks: [chunk(1, 0, 3, 4), chunk(1, 1, 2, 4)], fails: 1, message: /chunk 1 arrived out of order/ },
    { name: 'mismatched chunk count (more)', chunks: [chunk(1, 0, 2, 4), chunk(1, 1, 3, 4)], fails: 1, message: /chunk 1 arrived out of order/ },
    { name: 'interleaved batches', chunks: [chunk(1, 0, 2, 4), chunk(2, 0, 2, 4)], fails: 1, message: /frame 2 started before frame 1 ended/ },
    { name: 'first of several chunks without data', chunks: [chunk(1, 0, 2, null)], fails: 0, message: /frame 1: chunk 0 has no data/ },
    { name: 'later chunk without data', chunks: [chunk(1, 0, 2, 4), chunk(1, 1, 2, null)], fails: 1, message: /frame 1: chunk 1 has no data/ },
  ];
  for (const b of bad) {
    test(`refuses ${b.name} with InvalidArgumentError`, () => {
      const r = activationReassembler();
      b.chunks.slice(0, b.fails).forEach((c) => assert.equal(r.push(c), undefined));
      assert.throws(
        () => r.push(b.chunks[b.fails]),
        (err: unknown) => err instanceof InvalidArgumentError && err.code === 'INVALID_ARGUMENT' && b.message.test(err.message),
      );
    });
  }

  test('after an out-of-order chunk the reassembler starts clean on the next frame', () => {
    const r = activationReassembler();
    r.push(chunk(1, 0, 3, 4));
    assert.throws(() => r.push(chunk(1, 2, 3, 4)), InvalidArgumentError);
    // The rest of the broken frame is refused too, not stitched onto something else.
    assert.throws(() => r.push(chunk(1, 2, 3, 4)), /out of order/);
    assert.equal(r.push(chunk(2, 0, 2, 4)), undefined);
    assert.equal(r.push(chunk(2, 1, 2, 8))!.tensor!.data.byteLength, 12);
  });

  test('result frames reassemble the same way', () => {
    const V = 300_000; // four rows of logits are 4.8 MB: three chunks
    const batch: ResultBatch = { planEpoch: 3, batchId: 11, slices: [slice('a', 0, 2), slice('b', 5, 1), slice('c', 1, 4), slice('d', 8, 1)], logits: ramp(4 * V, -7) };
    const chunks = encodeResult(batch, V);
    assert.equal(chunks.length, Math.ceil((4 * V * F32) / FRAME_CHUNK_BYTES));
    const r = new Reassembler<Result>((f) => f.logits);
    const out = feed(r, chunks);
    const done = out.at(-1)!;
    assert.deepEqual(decodeResult(done.frame, done.tensor, V), { ...batch, error: undefined });
  });
});

describe('decoding checks the reassembled bytes', () => {
  const H = 4;
  /** One chunk claiming `shape` for `bytes` bytes, with slices holding `tokens` tokens. */
  function wire(shape: number[], bytes: number, tokens: number): Activation {
    return { ...chunk(1, 0, 1, 4), slices: [{ sequenceId: 'a', startPosition: 0, tokenCount: tokens, tokenIds: [], prefixKey: '', prefixTokens: 0 }], hidden: { dtype: 'DTYPE_F32', shape, data: Buffer.alloc(bytes) } };
  }
  const bad: { name: string; frame: Activation; message: RegExp }[] = [
    { name: 'more bytes than the shape', frame: wire([2, H], 2 * H * F32 + 4, 2), message: /frame 1 hidden: shape \[2, 4\] needs 32 bytes, got 36/ },
    { name: 'fewer bytes than the shape', frame: wire([2, H], 2 * H * F32 - 4, 2), message: /needs 32 bytes, got 28/ },
    { name: 'rows unlike the slices', frame: wire([3, H], 3 * H * F32, 2), message: /frame 1 hidden: shape \[3, 4\] where \[2, 4\] was expected/ },
    { name: 'columns unlike the hidden size', frame: wire([2, 8], 2 * 8 * F32, 2), message: /shape \[2, 8\] where \[2, 4\] was expected/ },
  ];
  for (const b of bad) {
    test(`an activation frame with ${b.name} is refused`, () => {
      const done = activationReassembler().push(b.frame)!;
      assert.throws(() => decodeStageFrame(done.frame, done.tensor, H), (err: unknown) => err instanceof InvalidArgumentError && b.message.test(err.message));
    });
  }

  test('result logits must be one row per slice', () => {
    const frame: Result = {
      planEpoch: 1,
      batchId: 4,
      chunkIndex: 0,
      chunkCount: 1,
      slices: [{ sequenceId: 'a', startPosition: 0, tokenCount: 3, tokenIds: [], prefixKey: '', prefixTokens: 0 }],
      logits: { dtype: 'DTYPE_F32', shape: [3, 5], data: Buffer.alloc(3 * 5 * F32) },
      error: '',
      code: 0,
      embed: false,
    };
    assert.throws(() => decodeResult(frame, frame.logits, 5), /result 4 logits: shape \[3, 5\] where \[1, 5\] was expected/);
    // An embedding result has hidden-size rows, and is refused where none was asked for.
    const pooled: Result = { ...frame, embed: true, logits: { dtype: 'DTYPE_F32', shape: [1, 4], data: Buffer.alloc(4 * F32) } };
    assert.equal(decodeResult(pooled, pooled.logits, 5, 4).logits?.length, 4);
    assert.equal(decodeResult(pooled, pooled.logits, 5, 4).embed, true);
    assert.throws(() => decodeResult(pooled, pooled.logits, 5), /an embedding result where none was asked for/);
  });
});

describe('slices', () => {
  test('to the wire and back, with and without token ids', () => {
    const withIds = slice('x', 4, 3, [1, 2, 3]);
    const without = slice('y', 9, 2);
    assert.deepEqual(sliceToWire(withIds), { sequenceId: 'x', startPosition: 4, tokenCount: 3, tokenIds: [1, 2, 3], prefixKey: '', prefixTokens: 0 });
    assert.deepEqual(sliceToWire(without), { sequenceId: 'y', startPosition: 9, tokenCount: 2, tokenIds: [], prefixKey: '', prefixTokens: 0 });
    assert.deepEqual(sliceFromWire(sliceToWire(withIds)), withIds);
    assert.deepEqual(sliceFromWire(sliceToWire(without)), without);
  });

  const bad: { name: string; wire: WireSlice; message: RegExp }[] = [
    { name: 'an empty sequence id', wire: { sequenceId: '', startPosition: 0, tokenCount: 1, tokenIds: [], prefixKey: '', prefixTokens: 0 }, message: /empty sequence_id/ },
    { name: 'zero tokens', wire: { sequenceId: 'a', startPosition: 0, tokenCount: 0, tokenIds: [], prefixKey: '', prefixTokens: 0 }, message: /slice a: token_count must be positive/ },
    { name: 'negative tokens', wire: { sequenceId: 'a', startPosition: 0, tokenCount: -2, tokenIds: [], prefixKey: '', prefixTokens: 0 }, message: /token_count must be positive/ },
    { name: 'too few token ids', wire: { sequenceId: 'a', startPosition: 0, tokenCount: 3, tokenIds: [1, 2], prefixKey: '', prefixTokens: 0 }, message: /slice a: 2 token ids for token_count 3/ },
    { name: 'too many token ids', wire: { sequenceId: 'a', startPosition: 0, tokenCount: 1, tokenIds: [1, 2], prefixKey: '', prefixTokens: 0 }, message: /2 token ids for token_count 1/ },
    { name: 'a prefix key without its token count', wire: { sequenceId: 'a', startPosition: 16, tokenCount: 1, tokenIds: [], prefixKey: 'k', prefixTokens: 0 }, message: /prefix_key and prefix_tokens/ },
    { name: 'a prefix token count without a key', wire: { sequenceId: 'a', startPosition: 16, tokenCount: 1, tokenIds: [], prefixKey: '', prefixTokens: 16 }, message: /prefix_key and prefix_tokens/ },
    { name: 'a cached prefix past its start position', wire: { sequenceId: 'a', startPosition: 16, tokenCount: 1, tokenIds: [], prefixKey: 'k', prefixTokens: 32 }, message: /end at start_position 16/ },
    { name: 'an overlong prefix key', wire: { sequenceId: 'a', startPosition: 16, tokenCount: 1, tokenIds: [], prefixKey: 'k'.repeat(65), prefixTokens: 16 }, message: /at most 64 characters/ },
  ];
  for (const b of bad) {
    test(`a slice with ${b.name} is refused`, () => {
      assert.throws(() => sliceFromWire(b.wire), (err: unknown) => err instanceof InvalidArgumentError && b.message.test(err.message));
    });
  }
});
