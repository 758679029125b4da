/**
 * The scheduler over in-process pipelines of tiny-mistral: concurrent sequences of different
 * lengths get the reference tokens; with depth > 1 micro-batches overlap; and a pipeline that
 * breaks mid-generation is replaced and every sequence resumes token-exactly.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import type { SliceInput } from '../../../common/engine/stage-engine';
import { UnavailableError, type BoraError } from '../../../common/errors';
import { LocalPipeline, type Pipeline } from '../../../common/generation/pipeline';
import { Scheduler, type PipelineSource } from '../../../common/generation/scheduler';
import { sequenceId, type SequenceId } from '../../../common/ids';
import { Checkpoint } from '../../../common/model/checkpoint';
import { fixtureDir, loadReference } from '../../support/checkpoints';
import { loadPipeline } from '../../support/pipeline';
import { turnOfEventLoop } from '../../support/wait';

const ref = loadReference('tiny-mistral');
const STEPS = 40;

/** Wraps a pipeline: reports a depth, counts overlap, and can break after `failAfter` batches. */
class TestPipeline implements Pipeline {
  running = 0;
  maxRunning = 0;
  batches = 0;
  private batchWaiters: { count: number; resolve(): void }[] = [];
  constructor(
    readonly epoch: number,
    readonly depth: number,
    private readonly inner: LocalPipeline,
    private readonly failAfter = Infinity,
  ) {}
  /** Resolves once `count` micro-batches have started. */
  started(count: number): Promise<void> {
    if (this.batches >= count) return Promise.resolve();
    return new Promise((resolve) => this.batchWaiters.push({ count, resolve }));
  }
  async run(batchId: number, slices: readonly SliceInput[]): Promise<Float32Array> {
    this.batches++;
    for (const w of this.batchWaiters.filter((w) => this.batches >= w.count)) w.resolve();
    this.batchWaiters = this.batchWaiters.filter((w) => this.batches < w.count);
    if (this.batches > this.failAfter) throw new UnavailableError('stage died');
    this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    try {
      // Returns on a later turn of the event loop, as a remote pipeline would.
      await turnOfEventLoop();
      return await this.inner.run(batchId, slices);
    } finally {
      this.running--;
    }
  }
  release(ids: readonly SequenceId[]): Promise<void> {
    return this.inner.release(ids);
  }
}

class ListSource implements PipelineSource {
  failures: BoraError[] = [];
  private index = 0;
  constructor(private readonly pipelines: readonly Pipeline[]) {}
  current(): Pipeline | undefined {
    return this.pipelines[this.index];
  }
  async next(): Promise<Pipeline> {
    this.index++;
    return this.pipelines[this.index];
  }
  reportFailure(_p: Pipeline, err: BoraError): void {
    this.failures.push(err);
  }
}

function generateAll(scheduler: Scheduler, prompts: readonly (readonly number[])[]): Promise<{ tokens: number[][]; resumes: number[] }> {
  const resumes = prompts.map(() => 0);
  return Promise.all(
    prompts.map(
      (promptIds, i) =>
        new Promise<number[]>((resolve, reject) => {
          const tokens: number[] = [];
          scheduler.submit({
            id: sequenceId(`s${i}`),
            promptIds,
            sampling: { kind: 'greedy' },
            sink: {
              onToken: (token, index) => {
                assert.equal(index, tokens.length, 'token indices are consecutive');
                tokens.push(token);
                if (tokens.length === STEPS) resolve(tokens);
                return tokens.length === STEPS;
              },
              onError: reject,
              onResume: () => resumes[i]++,
            },
          });
        }),
    ),
  ).then((tokens) => ({ tokens, resumes }));
}

describe('Scheduler', () => {
  let ckpt: Checkpoint;
  before(async () => {
    ckpt = await Checkpoint.open(fixtureDir('tiny-mistral'));
  });

  test('concurrent sequences over a 3-deep pipeline get the reference tokens; micro-batches overlap', async () => {
    const pipeline = new TestPipeline(1, 3, new LocalPipeline(await loadPipeline(ckpt, [2, 4])));
    const scheduler = new Scheduler(new ListSource([pipeline]), { maxBatchTokens: 64, maxBatchSequences: 8 });
    const { tokens } = await generateAll(scheduler, ref.cases.map((c) => c.prompt_ids));
    ref.cases.forEach((c, i) => assert.deepEqual(tokens[i], c.greedy_tokens, `case ${i}`));
    assert.ok(pipeline.maxRunning >= 2, `micro-batches overlapped (max ${pipeline.maxRunning} in flight)`);
    assert.equal(scheduler.activeSequences, 0);
  });

  test('prefill in small chunks gives the same tokens; sequences not yet batched count as waiting', async () => {
    const pipeline = new TestPipeline(1, 1, new LocalPipeline(await loadPipeline(ckpt, [])));
    const scheduler = new Scheduler(new ListSource([pipeline]), { maxBatchTokens: 5, maxBatchSequences: 2 });
    const running = generateAll(scheduler, ref.cases.map((c) => c.prompt_ids));
    // One micro-batch of at most 5 prompt tokens is in flight; the other sequences wait for theirs.
    assert.equal(scheduler.activeSequences, ref.cases.length);
    assert.ok(scheduler.waitingSequences >= ref.cases.length - 2, `waiting ${scheduler.waitingSequences}`);
    const { tokens } = await running;
    ref.cases.forEach((c, i) => assert.deepEqual(tokens[i], c.greedy_tokens, `case ${i}`));
    assert.equal(scheduler.waitingSequences, 0);
  });

  test('quiesce() holds new micro-batches until none is in flight; switchTo(p, true) goes on without replay', async () => {
    const engines = new LocalPipeline(await loadPipeline(ckpt, [3]));
    const first = new TestPipeline(1, 2, engines);
    const second = new TestPipeline(2, 2, engines); // same engines: the caches are where they were
    const source = new ListSource([first, second]);
    const scheduler = new Scheduler(source, { maxBatchTokens: 64, maxBatchSequences: 8 });
    const running = generateAll(scheduler, ref.cases.map((c) => c.prompt_ids));
    await first.started(10);
    const positions = await scheduler.quiesce();
    assert.ok(positions !== undefined && positions.size === ref.cases.length, 'every sequence has a position');
    assert.equal(first.running, 0, 'nothing in flight once quiesced');
    const batchesHeld = first.batches;
    // The scheduler has no timers: anything that could start a micro-batch is a callback already
    // queued, and those have all run after a turn of the event loop.
    await turnOfEventLoop();
    assert.equal(first.batches, batchesHeld, 'no micro-batch starts while held');
    scheduler.switchTo(second, true);
    const { tokens, resumes } = await running;
    ref.cases.forEach((c, i) => assert.deepEqual(tokens[i], c.greedy_tokens, `case ${i}`));
    assert.deepEqual(resumes, [0, 0, 0], 'nothing was replayed');
    assert.ok(second.batches > 0);
  });

  test('a pipeline that breaks mid-generation is replaced and every sequence resumes token-exactly', async () => {
    const broken = new TestPipeline(1, 2, new LocalPipeline(await loadPipeline(ckpt, [3])), 30);
    const fresh = new TestPipeline(2, 2, new LocalPipeline(await loadPipeline(ckpt, [1])));
    const source = new ListSource([broken, fresh]);
    const scheduler = new Scheduler(source, { maxBatchTokens: 64, maxBatchSequences: 8 });
    const { tokens, resumes } = await generateAll(scheduler, ref.cases.map((c) => c.prompt_ids));
    ref.cases.forEach((c, i) => assert.deepEqual(tokens[i], c.greedy_tokens, `case ${i}`));
    assert.equal(source.failures.length, 1, 'the failure was reported once');
    assert.deepEqual(resumes, [1, 1, 1], 'every sequence was resumed once');
    assert.ok(fresh.batches > 0);
  });

  test('reports each sequence\'s queue wait once, and the recovery time from the failure to the next pipeline\'s first micro-batch', async () => {
    const broken = new TestPipeline(1, 1, new LocalPipeline(await loadPipeline(ckpt, [3])), 12);
    const fresh = new TestPipeline(2, 1, new LocalPipeline(await loadPipeline(ckpt, [1])));
    const clock = { ms: 0 };
    const source = new ListSource([broken, fresh]);
    // The next pipeline arrives 2.5 s (of the test's clock) after the failure.
    const next = source.next.bind(source);
    source.next = async () => {
      clock.ms += 2500;
      return next();
    };
    const waits: number[] = [];
    const recoveries: number[] = [];
    const scheduler = new Scheduler(source, {
      maxBatchTokens: 64,
      maxBatchSequences: 1,
      nowMs: () => clock.ms,
      onQueueWait: (s) => waits.push(s),
      onRecovered: (s) => recoveries.push(s),
    });
    const { tokens } = await generateAll(scheduler, ref.cases.map((c) => c.prompt_ids));
    ref.cases.forEach((c, i) => assert.deepEqual(tokens[i], c.greedy_tokens, `case ${i}`));
    assert.equal(waits.length, ref.cases.length, 'once per sequence, not again on replay');
    assert.ok(waits.every((w) => w === 0), 'the test clock did not move before the first micro-batches');
    assert.deepEqual(recoveries, [2.5]);
  });
});
