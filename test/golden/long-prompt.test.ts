/**
 * Batch- and shape-invariance on prompts longer than the sliding window and than one attention
 * tile, with the native kernels: a 70-token prompt (tiny-mistral's window is 24) gives the same
 * logits, bit for bit, prefilled in one call, in chunks of 13 batched beside another sequence
 * at a different length, and token by token; on tiny-mixtral (no window) as well.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { sequenceId } from '../../common/ids';
import { Checkpoint } from '../../common/model/checkpoint';
import { firstBitMismatch } from '../support/bits';
import { fixtureDir, type FixtureName } from '../support/checkpoints';
import { nativeSkip } from '../support/kernels';
import { loadPipeline } from '../support/pipeline';

const PROMPT = Array.from({ length: 70 }, (_, i) => 1 + ((i * 7919 + 13) % 31000));
const OTHER = Array.from({ length: 45 }, (_, i) => 2 + ((i * 104729 + 5) % 31000));

for (const name of ['tiny-mistral', 'tiny-mixtral'] as FixtureName[]) {
  describe(`${name}: long prompts, native kernels`, { skip: nativeSkip }, () => {
    test('one call, chunks batched with another sequence, and token by token give bit-identical logits', async () => {
      const ckpt = await Checkpoint.open(fixtureDir(name));
      const [engine] = await loadPipeline(ckpt, [], 'native');
      const vocab = ckpt.config.vocabSize;
      try {
        const whole = await engine.forward({ slices: [{ id: sequenceId('whole'), startPosition: 0, tokenCount: PROMPT.length, tokenIds: PROMPT }] });
        const wholeLogits = whole.logits!.slice();

        // Chunks of 13 beside OTHER in chunks of 9 (different lengths and offsets in each call).
        let logits: Float32Array | undefined;
        for (let at = 0, other = 0; at < PROMPT.length; at += 13, other += 9) {
          const slices = [{ id: sequenceId('chunked'), startPosition: at, tokenCount: Math.min(13, PROMPT.length - at), tokenIds: PROMPT.slice(at, at + 13) }];
          const otherCount = Math.min(9, OTHER.length - other);
          if (otherCount > 0) slices.push({ id: sequenceId('other'), startPosition: other, tokenCount: otherCount, tokenIds: OTHER.slice(other, other + otherCount) });
          logits = (await engine.forward({ slices: otherCount > 0 ? slices.reverse() : slices })).logits!;
          if (otherCount > 0) logits = logits.subarray(vocab, 2 * vocab);
        }
        assert.equal(firstBitMismatch(logits!, wholeLogits), -1, 'chunked and batched');

        for (let at = 0; at < PROMPT.length; at++) {
          logits = (await engine.forward({ slices: [{ id: sequenceId('steps'), startPosition: at, tokenCount: 1, tokenIds: [PROMPT[at]] }] })).logits!;
        }
        assert.equal(firstBitMismatch(logits!, wholeLogits), -1, 'token by token');
        assert.ok(wholeLogits.some((x) => x !== 0), 'the logits hold values');
      } finally {
        await engine.close();
      }
    });
  });
}
