/**
 * The engine thread: a stage loaded there gives the reference tokens, errors keep their class
 * across the thread boundary, and the main thread's event loop keeps ticking while it computes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { InvalidArgumentError } from '../../../common/errors';
import { sequenceId } from '../../../common/ids';
import { EngineThread, type ThreadedStage } from '../../../worker/engine-thread';
import { fixtureDir, loadReference } from '../../support/checkpoints';
import { argmaxRows } from '../../support/pipeline';

const ref = loadReference('tiny-mistral');
const COMPUTE = { threads: 1 };

describe('EngineThread', () => {
  let thread: EngineThread;
  let stages: ThreadedStage[];
  before(async () => {
    thread = new EngineThread();
    const source = { kind: 'local' as const, dir: fixtureDir('tiny-mistral') };
    stages = [(await thread.loadStage(source, { start: 0, end: 3 }, COMPUTE)).stage, (await thread.loadStage(source, { start: 3, end: 6 }, COMPUTE)).stage];
  });
  after(async () => thread.terminate());

  test('two stages on the thread give the reference tokens and report cache stats', async () => {
    const c = ref.cases[0];
    const id = sequenceId('t');
    const tokens: number[] = [];
    let input = { id, startPosition: 0, tokenCount: c.prompt_ids.length, tokenIds: c.prompt_ids as readonly number[] };
    let max = 0;
    let last = performance.now();
    const ticker = setInterval(() => {
      const now = performance.now();
      max = Math.max(max, now - last);
      last = now;
    }, 2);
    for (let step = 0; step < c.greedy_tokens.length; step++) {
      const first = await stages[0].forward({ slices: [input] });
      const out = await stages[1].forward({ slices: [{ ...input, tokenIds: undefined }], hidden: first.hidden });
      const [next] = argmaxRows(out.logits!, 1);
      tokens.push(next);
      input = { id, startPosition: input.startPosition + input.tokenCount, tokenCount: 1, tokenIds: [next] };
    }
    clearInterval(ticker);
    assert.deepEqual(tokens, c.greedy_tokens);
    assert.equal(stages[0].stats.sequenceCount, 1);
    assert.ok(stages[0].stats.kvCacheBytes > 0);
    assert.deepEqual(await stages[1].positions([id]), [c.prompt_ids.length + c.greedy_tokens.length - 1]);
    assert.equal(await stages[0].release([id, sequenceId('unknown')]), 1);
    assert.equal(stages[0].stats.sequenceCount, 0);
    assert.ok(max < 200, `the main event loop kept ticking (longest gap ${max.toFixed(0)} ms)`);
  });

  test('an engine error arrives as the same error class', async () => {
    await assert.rejects(stages[0].forward({ slices: [{ id: sequenceId('bad'), startPosition: 0, tokenCount: 1, tokenIds: [999_999] }] }), InvalidArgumentError);
    await assert.rejects(stages[1].forward({ slices: [{ id: sequenceId('bad'), startPosition: 0, tokenCount: 2 }], hidden: new Float32Array(3) }), InvalidArgumentError);
  });
});
