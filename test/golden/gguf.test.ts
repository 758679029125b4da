/**
 * GGUF files against their source directories, on the golden prompts: an F32, F16 or BF16 GGUF
 * of a fixture gives bit-identical logits and the same greedy tokens as the directory in the
 * same precision (the fixture itself for BF16, its rewrite for F16 and F32), in one process and
 * split into two stages. The quantized types join this matrix once the quantized kernels land
 * (GGUF_TYPES below).
 */
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { Checkpoint } from '../../common/model/checkpoint';
import { GgufCheckpoint } from '../../common/model/gguf/gguf-checkpoint';
import type { GgufWeightType } from '../../common/model/gguf/gguf-writer';
import { rewriteCheckpoint } from '../../common/model/rewrite';
import type { WeightSource } from '../../common/model/weight-source';
import { firstBitMismatch } from '../support/bits';
import { fixtureDir, loadReference, tempDir, type FixtureName } from '../support/checkpoints';
import { fixtureGguf } from '../support/gguf';
import { nativeSkip } from '../support/kernels';
import { greedyBatch, loadPipeline } from '../support/pipeline';

const STEPS = 12;
/** The float types; Q8_0, Q4_0 and Q4_K_M go here when the native kernels run them. */
const GGUF_TYPES: readonly GgufWeightType[] = ['BF16', 'F16', 'F32'];

async function directoryIn(t: TestContext, name: FixtureName, type: GgufWeightType): Promise<string> {
  if (type === 'BF16') return fixtureDir(name);
  const dir = await tempDir(t, `${name}-${type}`);
  await rewriteCheckpoint(fixtureDir(name), dir, { dtype: type === 'F16' ? 'f16' : 'f32' });
  return dir;
}

async function run(source: WeightSource, splits: number[], prompts: readonly (readonly number[])[]) {
  const stages = await loadPipeline(source, splits, 'native');
  try {
    return await greedyBatch(stages, prompts, STEPS);
  } finally {
    await Promise.all(stages.map((s) => s.close()));
  }
}

for (const name of ['tiny-mistral', 'tiny-mixtral'] as FixtureName[]) {
  describe(`${name}: GGUF against the directory`, { skip: nativeSkip }, () => {
    const prompts = loadReference(name).cases.map((c) => c.prompt_ids);
    for (const type of GGUF_TYPES) {
      test(`gguf-golden ${type}: bit-identical first logits and the same tokens, whole and split`, async (t) => {
        const dir = await Checkpoint.open(await directoryIn(t, name, type));
        const gguf = await GgufCheckpoint.open(await fixtureGguf(t, name, type));
        for (const splits of [[], [2]]) {
          const expected = await run(dir, splits, prompts);
          const got = await run(gguf, splits, prompts);
          prompts.forEach((_, i) => {
            assert.equal(got.firstLogits[i].length, dir.config.vocabSize, `case ${i}: one row of logits`);
            assert.deepEqual(got.tokens[i], expected.tokens[i], `case ${i}, splits ${JSON.stringify(splits)}`);
            assert.equal(firstBitMismatch(got.firstLogits[i], expected.firstLogits[i]), -1, `case ${i} logits, splits ${JSON.stringify(splits)}`);
          });
        }
      });
    }
  });
}
