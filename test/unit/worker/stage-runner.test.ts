/**
 * A stage's micro-batches: frames queued while the engine is busy are merged into one engine
 * call when they share no sequence, carry no error and stay within the token bound; the merged
 * output is split back so that each frame gets exactly its own rows. Checked on the pure parts
 * (mergeableCount, splitOutput) and through a StageRunner over a fake engine.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { StageInput, StageOutput } from '../../../common/engine/stage-engine';
import { InvalidArgumentError } from '../../../common/errors';
import { sequenceId, type LayerRange, type SequenceId } from '../../../common/ids';
import type { ModelConfig } from '../../../common/model/config';
import type { ResultBatch, StageFrame } from '../../../common/wire/frames';
import type { StageBackend } from '../../../worker/stage-backend';
import { IdleSequences } from '../../../worker/idle-sequences';
import { MAX_MERGED_TOKENS, StageRunner, mergeableCount, splitOutput } from '../../../worker/stage-runner';
import { eventually } from '../../support/wait';

const H = 2;
const V = 3;

/** A frame for sequences `ids` with `tokens` tokens each; its hidden rows hold `batchId * 100 + row`. */
function frame(batchId: number, ids: string[], tokens = 1, error?: { message: string; code: number }): StageFrame {
  const slices = ids.map((id, i) => ({ id: sequenceId(id), startPosition: 10 * i, tokenCount: tokens }));
  const rows = ids.length * tokens;
  const hidden = new Float32Array(rows * H);
  for (let r = 0; r < rows; r++) hidden.fill(batchId * 100 + r, r * H, (r + 1) * H);
  return { planEpoch: 1, batchId, stageIndex: 1, slices, hidden, error };
}

describe('mergeableCount', () => {
  const err = { message: 'earlier stage failed', code: 13 };
  const cases: { name: string; queue: StageFrame[]; max?: number; count: number }[] = [
    { name: 'an empty queue', queue: [], count: 0 },
    { name: 'one frame', queue: [frame(1, ['a'])], count: 1 },
    { name: 'frames over distinct sequences', queue: [frame(1, ['a']), frame(2, ['b', 'c']), frame(3, ['d'])], count: 3 },
    { name: 'stops at a frame sharing a sequence with the first', queue: [frame(1, ['a', 'b']), frame(2, ['c']), frame(3, ['b']), frame(4, ['d'])], count: 2 },
    { name: 'stops at a frame sharing a sequence with a merged one', queue: [frame(1, ['a']), frame(2, ['c']), frame(3, ['c'])], count: 2 },
    { name: 'an error frame goes alone', queue: [frame(1, ['a'], 1, err), frame(2, ['b'])], count: 1 },
    { name: 'stops before an error frame', queue: [frame(1, ['a']), frame(2, ['b']), frame(3, ['c'], 1, err)], count: 2 },
    { name: 'stops at an embedding frame after generation frames', queue: [frame(1, ['a']), frame(2, ['b']), { ...frame(3, ['c']), embed: true }], count: 2 },
    { name: 'merges embedding frames with each other only', queue: [{ ...frame(1, ['a']), embed: true }, { ...frame(2, ['b']), embed: true }, frame(3, ['c'])], count: 2 },
    { name: 'fills up to the token bound exactly', queue: [frame(1, ['a'], 6), frame(2, ['b'], 4), frame(3, ['c'], 1)], max: 10, count: 2 },
    { name: 'stops where the next frame would pass the bound', queue: [frame(1, ['a'], 6), frame(2, ['b'], 5), frame(3, ['c'], 1)], max: 10, count: 1 },
    { name: 'a first frame over the bound still runs, alone', queue: [frame(1, ['a'], 12), frame(2, ['b'], 1)], max: 10, count: 1 },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const before = [...c.queue];
      assert.equal(mergeableCount(c.queue, c.max), c.count);
      assert.deepEqual(c.queue, before, 'the queue is not changed');
    });
  }

  test(`the default bound is ${MAX_MERGED_TOKENS} tokens`, () => {
    assert.equal(MAX_MERGED_TOKENS, 4096);
    assert.equal(mergeableCount([frame(1, ['a'], 4000), frame(2, ['b'], 96)]), 2);
    assert.equal(mergeableCount([frame(1, ['a'], 4000), frame(2, ['b'], 97)]), 1);
  });
});

describe('splitOutput', () => {
  test('each frame gets its own token rows of hidden state and slice rows of logits', () => {
    // Frames of 1 slice x 2 tokens, 2 slices x 3 tokens, 1 slice x 1 token: 9 token rows, 4 slice rows.
    const group = [frame(1, ['a'], 2), frame(2, ['b', 'c'], 3), frame(3, ['d'], 1)];
    const hidden = Float32Array.from({ length: 9 * H }, (_, i) => i);
    const logits = Float32Array.from({ length: 4 * V }, (_, i) => 1000 + i);
    const parts = splitOutput(group, { hidden, logits }, H, V);
    assert.deepEqual(
      parts.map((p) => [...p.hidden]),
      [
        [0, 1, 2, 3],
        [4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
        [16, 17],
      ],
    );
    assert.deepEqual(
      parts.map((p) => [...p.logits!]),
      [
        [1000, 1001, 1002],
        [1003, 1004, 1005, 1006, 1007, 1008],
        [1009, 1010, 1011],
      ],
    );
    // Views, not copies: the runner copies when it sends.
    assert.equal(parts[1].hidden.buffer, hidden.buffer);
  });

  test('without logits (not the last stage) every part has none', () => {
    const parts = splitOutput([frame(1, ['a']), frame(2, ['b'])], { hidden: new Float32Array(2 * H) }, H, V);
    assert.deepEqual(
      parts.map((p) => p.logits),
      [undefined, undefined],
    );
  });
});

/** Resolves once `list` holds `count` items; fails after 5 s. */
function until<T>(list: readonly T[], count: number): Promise<void> {
  return eventually(() => list.length >= count, 5_000, `${count} items`);
}

/** An engine whose output rows are its input rows plus 0.5, with calls that finish when the test says. */
class FakeStage implements StageBackend {
  readonly config = { hiddenSize: H, vocabSize: V } as ModelConfig;
  readonly range: LayerRange = { start: 2, end: 4 };
  readonly stats = { sequenceCount: 0, kvCacheBytes: 0 };
  readonly calls: { ids: string[]; rows: number[] }[] = [];
  private gates: (() => void)[] = [];
  failWith: Error | undefined;

  constructor(readonly isFirst = false) {}

  async forward(input: StageInput): Promise<StageOutput> {
    const hidden = input.hidden!;
    this.calls.push({ ids: input.slices.map((s) => s.id), rows: [...hidden].filter((_, i) => i % H === 0) });
    await new Promise<void>((resolve) => this.gates.push(resolve));
    if (this.failWith !== undefined) throw this.failWith;
    const logits = Float32Array.from({ length: input.slices.length * V }, (_, i) => Math.floor(i / V));
    return { hidden: hidden.map((v) => v + 0.5), logits };
  }

  /** Lets the oldest waiting call finish; resolves once a call is waiting to be let through. */
  async finishNext(): Promise<void> {
    await until(this.gates, 1);
    this.gates.shift()!();
  }

  readonly released: SequenceId[][] = [];
  async release(ids: readonly SequenceId[]): Promise<number> {
    this.released.push([...ids]);
    return ids.length;
  }
  async positions(ids: readonly SequenceId[]): Promise<(number | undefined)[]> {
    return ids.map(() => undefined);
  }
  async snapshotKv(): Promise<never[]> {
    return [];
  }
  async restoreKv(): Promise<void> {}
  async retain(ids: readonly SequenceId[]): Promise<number> {
    return ids.length;
  }
  async close(): Promise<void> {}
}


describe('StageRunner', () => {
  const assignment = { epoch: 1, stageIndex: 1, stageCount: 3, range: { start: 2, end: 4 } };

  test('frames queued while the engine is busy are merged where they may be, and each goes on with its own rows', async () => {
    const stage = new FakeStage();
    const sent: StageFrame[] = [];
    const runner = new StageRunner(assignment, stage, { kind: 'next', send: async (f) => void sent.push(f) });
    const err = { message: 'stage 0 failed', code: 14 };
    runner.enqueue(frame(1, ['a']));
    // While frame 1 computes: 2 and 3 share nothing, 4 repeats b, 5 carries an error.
    runner.enqueue(frame(2, ['b'], 2));
    runner.enqueue(frame(3, ['c']));
    runner.enqueue(frame(4, ['b']));
    runner.enqueue(frame(5, ['d'], 1, err));
    assert.equal(runner.queueDepth, 4);
    for (let i = 0; i < 3; i++) await stage.finishNext();
    await until(sent, 5);

    assert.deepEqual(
      stage.calls.map((c) => c.ids),
      [['a'], ['b', 'c'], ['b']],
      'one call for 2 and 3; 4 waits for its own; the error frame never reaches the engine',
    );
    assert.deepEqual(stage.calls[1].rows, [200, 201, 300], 'the merged input is frame 2 then frame 3');
    assert.deepEqual(
      sent.map((f) => [f.batchId, f.stageIndex, f.hidden === undefined ? undefined : [...f.hidden], f.error]),
      [
        [1, 2, [100.5, 100.5], undefined],
        [2, 2, [200.5, 200.5, 201.5, 201.5], undefined],
        [3, 2, [300.5, 300.5], undefined],
        [4, 2, [400.5, 400.5], undefined],
        [5, 2, undefined, err],
      ],
    );
    assert.equal(runner.queueDepth, 0);
  });

  test('the last stage publishes each frame its own logits rows; an engine error fails every merged frame', async () => {
    const stage = new FakeStage();
    const published: ResultBatch[] = [];
    const runner = new StageRunner({ ...assignment, stageIndex: 2 }, stage, { kind: 'results', publish: (r) => void published.push(r) });
    runner.enqueue(frame(1, ['a']));
    runner.enqueue(frame(2, ['b', 'c']));
    runner.enqueue(frame(3, ['d']));
    await stage.finishNext();
    stage.failWith = new InvalidArgumentError('position 9 does not continue the cache');
    await stage.finishNext();
    await until(published, 3);
    assert.deepEqual(
      published.map((r) => [r.batchId, r.logits === undefined ? undefined : [...r.logits], r.error]),
      [
        [1, [0, 0, 0], undefined],
        [2, undefined, { message: 'stage 2 position 9 does not continue the cache', code: 3 }],
        [3, undefined, { message: 'stage 2 position 9 does not continue the cache', code: 3 }],
      ],
    );
    assert.deepEqual(
      stage.calls.map((c) => c.ids),
      [['a'], ['b', 'c', 'd']],
    );
  });

  test('whenBelow resolves as the queue drains, and at once after close', async () => {
    const stage = new FakeStage();
    const runner = new StageRunner(assignment, stage, { kind: 'next', send: async () => {} });
    runner.enqueue(frame(1, ['a']));
    runner.enqueue(frame(2, ['a']));
    runner.enqueue(frame(3, ['a']));
    assert.equal(runner.queueDepth, 2);
    const order: string[] = [];
    const below2 = runner.whenBelow(2).then(() => order.push('below 2'));
    const below1 = runner.whenBelow(1).then(() => order.push('below 1'));
    const below0 = runner.whenBelow(0).then(() => order.push('below 0 (closed)'));
    await stage.finishNext();
    await below2;
    assert.deepEqual(order, ['below 2']);
    await stage.finishNext();
    await below1;
    assert.deepEqual(order, ['below 2', 'below 1']);
    runner.close();
    await below0;
    assert.deepEqual(order, ['below 2', 'below 1', 'below 0 (closed)']);
    await stage.finishNext();
  });
});

describe('idle sequences', () => {
  test('IdleSequences hands out exactly the sequences untouched for longer than the limit, once', () => {
    const clock = { ms: 0 };
    const idle = new IdleSequences(1000, () => clock.ms);
    idle.touch([sequenceId('a'), sequenceId('b')]);
    clock.ms = 600;
    idle.touch([sequenceId('b'), sequenceId('c')]);
    clock.ms = 1000;
    assert.deepEqual(idle.takeIdle(), [], 'a at exactly the limit is not yet idle');
    clock.ms = 1001;
    assert.deepEqual(idle.takeIdle(), [sequenceId('a')]);
    assert.deepEqual(idle.takeIdle(), [], 'handed out once');
    clock.ms = 1601;
    assert.deepEqual(idle.takeIdle().sort(), [sequenceId('b'), sequenceId('c')]);
    assert.equal(idle.size, 0);
  });

  test('a stage frees the caches of sequences no frame reached for the limit, and of no other', async () => {
    const stage = new FakeStage();
    const clock = { ms: 0 };
    const freed: number[] = [];
    const assignment = { epoch: 1, stageIndex: 1, stageCount: 3, range: { start: 2, end: 4 } };
    const runner = new StageRunner(assignment, stage, { kind: 'next', send: async () => {} }, { onIdleReleased: (n) => freed.push(n) }, new IdleSequences(60_000, () => clock.ms));
    try {
      runner.enqueue(frame(1, ['forged', 'live']));
      await stage.finishNext();
      clock.ms = 30_000;
      runner.enqueue(frame(2, ['live']));
      await stage.finishNext();
      await eventually(() => stage.calls.length === 2, 5000, 'both frames computed');
      clock.ms = 60_001;
      assert.equal(await runner.releaseIdle(), 1);
      assert.deepEqual(stage.released, [[sequenceId('forged')]], 'the sequence touched 30 s ago stays');
      assert.deepEqual(freed, [1]);
      clock.ms = 90_001;
      assert.equal(await runner.releaseIdle(), 1);
      assert.deepEqual(stage.released[1], [sequenceId('live')]);
      assert.equal(await runner.releaseIdle(), 0, 'nothing left to free');
    } finally {
      runner.close();
    }
  });
});
