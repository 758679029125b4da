/**
 * The last stage's ResultsHub over fake Results streams: a subscriber gets headers at once and
 * then every result of its plan epoch, chunked like any result frame; results nobody of that
 * epoch listens for wait in a buffer of the newest 256, handed to the next subscriber of their
 * epoch (others are dropped when anyone subscribes); a stream that ends stops receiving; closeAll
 * ends every stream and forgets the buffer.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, test } from 'node:test';
import { sequenceId } from '../../../common/ids';
import { Reassembler, decodeResult, encodeResult, type ResultBatch } from '../../../common/wire/frames';
import { FRAME_CHUNK_BYTES } from '../../../common/wire/proto';
import { ResultsHub } from '../../../worker/results-hub';

type Frame = ReturnType<typeof encodeResult>[number];
type Subscriber = Parameters<ResultsHub['subscribe']>[0];

const V = 4;

/** What the hub uses of a server stream: the request, headers, writes, end and its events. */
class FakeStream extends EventEmitter {
  readonly request: { planEpoch: number };
  readonly frames: Frame[] = [];
  headers = 0;
  ended = false;
  constructor(planEpoch: number) {
    super();
    this.request = { planEpoch };
  }
  sendMetadata(): void {
    this.headers++;
  }
  write(frame: Frame): boolean {
    this.frames.push(frame);
    return true;
  }
  end(): void {
    this.ended = true;
  }
  /** The results received so far, decoded, as [epoch, batchId] pairs. */
  received(vocab = V): [number, number][] {
    const r = new Reassembler<Frame>((f) => f.logits);
    const out: [number, number][] = [];
    for (const f of this.frames) {
      const done = r.push(f);
      if (done === undefined) continue;
      const batch = decodeResult(done.frame, done.tensor, vocab);
      out.push([batch.planEpoch, batch.batchId]);
    }
    return out;
  }
}

function subscribe(hub: ResultsHub, planEpoch: number): FakeStream {
  const stream = new FakeStream(planEpoch);
  hub.subscribe(stream as unknown as Subscriber);
  return stream;
}

function result(planEpoch: number, batchId: number): ResultBatch {
  return { planEpoch, batchId, slices: [{ id: sequenceId(`s${batchId}`), startPosition: 0, tokenCount: 1 }], logits: Float32Array.from({ length: V }, (_, i) => batchId + i / 10) };
}

describe('ResultsHub', () => {
  test('a subscriber gets headers at once, then each result of its epoch in order', () => {
    const hub = new ResultsHub(() => V);
    const s = subscribe(hub, 3);
    assert.equal(s.headers, 1);
    assert.equal(s.frames.length, 0);
    hub.publish(result(3, 1));
    hub.publish(result(3, 2));
    assert.deepEqual(s.received(), [
      [3, 1],
      [3, 2],
    ]);
    const r = new Reassembler<Frame>((f) => f.logits).push(s.frames[0])!;
    assert.deepEqual([...decodeResult(r.frame, r.tensor, V).logits!], [...result(3, 1).logits!]);
  });

  test('every subscriber of the epoch gets every result; one of another epoch gets none', () => {
    const hub = new ResultsHub(() => V);
    const a = subscribe(hub, 2);
    const b = subscribe(hub, 2);
    const other = subscribe(hub, 1);
    hub.publish(result(2, 7));
    assert.deepEqual(a.received(), [[2, 7]]);
    assert.deepEqual(b.received(), [[2, 7]]);
    assert.deepEqual(other.frames, []);
  });

  test('results with no subscriber of their epoch wait, and go to the next subscriber of it', () => {
    const hub = new ResultsHub(() => V);
    const old = subscribe(hub, 1);
    hub.publish(result(2, 10));
    hub.publish(result(2, 11));
    assert.deepEqual(old.frames, []);
    const s = subscribe(hub, 2);
    assert.deepEqual(s.received(), [
      [2, 10],
      [2, 11],
    ]);
    // Handed over once: a second subscriber does not get them again.
    const again = subscribe(hub, 2);
    assert.deepEqual(again.frames, []);
  });

  test('a subscription empties the buffer: results of other epochs are dropped', () => {
    const hub = new ResultsHub(() => V);
    hub.publish(result(1, 1));
    hub.publish(result(2, 2));
    hub.publish(result(1, 3));
    const s1 = subscribe(hub, 1);
    assert.deepEqual(s1.received(), [
      [1, 1],
      [1, 3],
    ]);
    const s2 = subscribe(hub, 2);
    assert.deepEqual(s2.frames, [], 'the epoch-2 result was dropped when epoch 1 subscribed');
  });

  test('the buffer keeps the newest 256 results', () => {
    const hub = new ResultsHub(() => V);
    for (let i = 0; i < 300; i++) hub.publish(result(5, i));
    const s = subscribe(hub, 5);
    const ids = s.received().map(([, id]) => id);
    assert.equal(ids.length, 256);
    assert.deepEqual(ids, Array.from({ length: 256 }, (_, i) => 44 + i));
  });

  for (const event of ['cancelled', 'close', 'error']) {
    test(`a stream that emits "${event}" gets nothing more; its results are buffered for the next`, () => {
      const hub = new ResultsHub(() => V);
      const s = subscribe(hub, 1);
      hub.publish(result(1, 1));
      s.emit(event, new Error('gone'));
      hub.publish(result(1, 2));
      assert.deepEqual(s.received(), [[1, 1]]);
      assert.deepEqual(subscribe(hub, 1).received(), [[1, 2]]);
    });
  }

  test('closeAll ends every stream and forgets buffered results', () => {
    const hub = new ResultsHub(() => V);
    const a = subscribe(hub, 1);
    const b = subscribe(hub, 2);
    hub.publish(result(3, 1));
    hub.closeAll();
    assert.equal(a.ended, true);
    assert.equal(b.ended, true);
    hub.publish(result(1, 2));
    assert.deepEqual(a.frames, [], 'an ended stream is no longer written to');
    assert.deepEqual(subscribe(hub, 3).frames, [], 'the epoch-3 result was forgotten');
  });

  test('results are chunked with the vocabulary size asked at write time', () => {
    let vocab = V;
    const hub = new ResultsHub(() => vocab);
    const s = subscribe(hub, 1);
    // Two slices of a vocabulary whose logits take more than one chunk.
    vocab = FRAME_CHUNK_BYTES / 4;
    const big: ResultBatch = {
      planEpoch: 1,
      batchId: 9,
      slices: [
        { id: sequenceId('a'), startPosition: 0, tokenCount: 1 },
        { id: sequenceId('b'), startPosition: 0, tokenCount: 1 },
      ],
      logits: new Float32Array(2 * vocab).fill(1.5),
    };
    hub.publish(big);
    assert.equal(s.frames.length, 2);
    assert.deepEqual(
      s.frames.map((f) => [f.chunkIndex, f.chunkCount, f.logits!.shape]),
      [
        [0, 2, [2, vocab]],
        [1, 2, []],
      ],
    );
    assert.deepEqual(s.received(vocab), [[1, 9]]);
  });
});
