/**
 * The prefix cache changes no bit: multi-turn chats (each turn a new sequence whose prompt is the
 * whole conversation) give the same tokens and the same logits, bit for bit, with and without the
 * cache, over the two fixtures (tiny-mistral's sliding window of 24 is shorter than the cached
 * prefixes; tiny-mixtral is MoE), across pipeline splits, with prompt chunks aligned to blocks or
 * not, and under a budget small enough to evict. Every run checks that the cache was used.
 * A later stage that lacks a block refuses the micro-batch (FAILED_PRECONDITION) rather than
 * compute from missing keys and values; a new plan epoch empties the cache.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { StageEngine } from '../../common/engine/stage-engine';
import { FailedPreconditionError } from '../../common/errors';
import { sequenceId } from '../../common/ids';
import { Checkpoint } from '../../common/model/checkpoint';
import { PREFIX_BLOCK_TOKENS } from '../../worker/prefix-cache';
import { PrefixStage } from '../../worker/prefix-stage';
import { firstBitMismatch } from '../support/bits';
import { fixtureDir, type FixtureName } from '../support/checkpoints';
import { loadPipeline } from '../support/pipeline';
import { PrefixPipeline, chats, systemPrompt, type TurnResult } from '../support/prefix-pipeline';

const MiB = 1024 * 1024;

function assertSameBits(actual: TurnResult[][], expected: TurnResult[][]): void {
  assert.equal(actual.length, expected.length);
  actual.forEach((stream, s) =>
    stream.forEach((turn, t) => {
      assert.deepEqual(turn.tokens, expected[s][t].tokens, `stream ${s} turn ${t}: tokens differ`);
      turn.logits.forEach((l, i) => assert.equal(firstBitMismatch(l, expected[s][t].logits[i]), -1, `stream ${s} turn ${t} token ${i}: logits differ`));
    }),
  );
}

const cases: { fixture: FixtureName; splits: number[] }[] = [
  { fixture: 'tiny-mistral', splits: [3] },
  { fixture: 'tiny-mistral', splits: [2, 4] },
  { fixture: 'tiny-mixtral', splits: [2] },
];

for (const { fixture, splits } of cases) {
  describe(`prefix cache on ${fixture}, stages split at ${splits.join(', ')}`, () => {
    let stages: StageEngine[];
    const options = { system: systemPrompt(40), streams: 3, turns: 4, steps: 6, tag: 'chat' };
    let reference: TurnResult[][];

    before(async () => {
      stages = await loadPipeline(await Checkpoint.open(fixtureDir(fixture)), splits);
      reference = await chats(new PrefixPipeline(stages, 0), { ...options, maxBatchTokens: 512 });
    });
    after(async () => {
      for (const s of stages) await s.close();
    });

    for (const maxBatchTokens of [512, 32, 21]) {
      test(`chats are bit-identical with the cache (prompt chunks of at most ${maxBatchTokens} tokens)`, async () => {
        const pipeline = new PrefixPipeline(stages, 64 * MiB);
        assertSameBits(await chats(pipeline, { ...options, maxBatchTokens }), reference);
        // The cache was used on every stage: the conversation so far, and the shared system prompt.
        for (const [i, b] of pipeline.backends.entries()) {
          const stats = b.stats.prefix!;
          assert.ok(stats.hitTokens >= 3 * 40, `stage ${i} skipped only ${stats.hitTokens} tokens`);
          assert.equal(stats.hitTokens % PREFIX_BLOCK_TOKENS, 0);
          assert.ok(stats.blocks > 0 && stats.bytes > 0);
        }
        assert.equal(pipeline.backends[1].stats.prefix!.hitTokens, pipeline.backends[0].stats.prefix!.hitTokens, 'later stages install what the first stage looked up');
        await pipeline.release(['x'].map(sequenceId));
      });
    }

    test('a budget of a few blocks evicts, later stages follow the evictions, and the bits stay the same', async () => {
      const probe = new PrefixPipeline(stages, 64 * MiB);
      await chats(probe, { ...options, streams: 1, turns: 1, maxBatchTokens: 512 });
      const first = probe.backends[0].stats.prefix!;
      const blockBytes = first.bytes / first.blocks;
      const pipeline = new PrefixPipeline(stages, 3 * blockBytes);
      assertSameBits(await chats(pipeline, { ...options, maxBatchTokens: 512 }), reference);
      const stats = pipeline.backends.map((b) => b.stats.prefix!);
      assert.ok(stats[0].evictedBlocks > 0, 'the small budget evicted');
      assert.ok(stats[0].bytes <= 3 * blockBytes);
      assert.ok(stats[0].hitTokens > 0, 'some lookups still hit');
      for (const s of stats.slice(1)) assert.equal(s.blocks, stats[0].blocks, 'a later stage holds the blocks the first stage holds');
    });

    test('a later stage without the blocks refuses the micro-batch; a new epoch empties the cache', async () => {
      const pipeline = new PrefixPipeline(stages, 64 * MiB);
      const prompt = systemPrompt(50);
      const slice = { id: sequenceId('p0'), startPosition: 0, tokenCount: prompt.length, tokenIds: prompt };
      await pipeline.run(1, [slice]);
      await pipeline.release([slice.id]);
      // A stage that lost its blocks (here: a fresh cache under the same epoch) must not compute.
      const first = new PrefixStage(stages[0], 64 * MiB, 'test-model');
      const second = new PrefixStage(stages[1], 64 * MiB, 'test-model');
      await first.forward({ slices: [{ ...slice, id: sequenceId('p1') }] }, { planEpoch: 1 });
      const again = await first.forward({ slices: [{ ...slice, id: sequenceId('p2') }] }, { planEpoch: 1 });
      assert.equal(again.slices![0].prefix?.tokens, 48, 'the first stage installed 3 blocks');
      await assert.rejects(second.forward({ slices: again.slices!, hidden: again.hidden }, { planEpoch: 1 }), FailedPreconditionError);
      // A new epoch: the first stage's cache starts empty (no block computed under another plan is served).
      const fresh = await first.forward({ slices: [{ ...slice, id: sequenceId('p3') }] }, { planEpoch: 2 });
      assert.equal(fresh.slices![0].prefix, undefined);
      assert.equal(fresh.slices![0].tokenCount, prompt.length);
      for (const s of stages) for (const id of ['p0', 'p1', 'p2', 'p3']) s.release(sequenceId(id));
    });
  });
}
