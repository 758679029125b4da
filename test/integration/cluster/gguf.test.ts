/**
 * GGUF files through real processes: `bora up --model FILE.gguf` (coordinator and workers open
 * the file; the workers read only their own stages' tensors) gives the reference tokens, with
 * tiny-mistral split over 2 workers and tiny-mixtral's experts spread over 2. The float types
 * run; Q8_0 and Q4_0 files give the tokens one process gives on the same file.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { GgufWeightType } from '../../../common/model/gguf/gguf-writer';
import { loadReference, type FixtureName } from '../../support/checkpoints';
import { bora, startCluster } from '../../support/cluster';
import { fixtureGguf } from '../../support/gguf';
import { GgufCheckpoint } from '../../../common/model/gguf/gguf-checkpoint';
import { greedyBatch, loadPipeline } from '../../support/pipeline';

const CLUSTER_GGUF_TYPES: readonly GgufWeightType[] = ['BF16', 'F16'];
const MATRIX: [FixtureName, string[]][] = [
  ['tiny-mistral', []],
  ['tiny-mixtral', ['--placement', 'experts']],
];

for (const [name, extra] of MATRIX) {
  describe(`${name} GGUF through bora up ${extra.join(' ')}`, () => {
    const ref = loadReference(name);
    for (const type of CLUSTER_GGUF_TYPES) {
      test(`gguf-cluster ${type}: 2 workers give the reference tokens for every case`, async (t) => {
        const file = await fixtureGguf(t, name, type);
        const cluster = await startCluster(t, file, 2, extra);
        assert.equal(cluster.file.workers.length, 2);
        for (const [i, c] of ref.cases.entries()) {
          const out = await bora(['generate', '--coordinator', cluster.file.coordinator, '--prompt-ids', c.prompt_ids.join(','), '--max-tokens', String(c.greedy_tokens.length), '--ignore-eos', '--json']);
          const { tokens } = JSON.parse(out) as { tokens: number[] };
          assert.deepEqual(tokens, c.greedy_tokens, `case ${i}`);
        }
      });
    }
  });
}

/** Quantized files through a cluster: the same tokens as one process on the same file. */
const QUANT_CLUSTER_TYPES: readonly GgufWeightType[] = ['Q8_0', 'Q4_0'];

for (const [name, extra] of MATRIX) {
  describe(`${name} quantized GGUF through bora up ${extra.join(' ')}`, () => {
    const ref = loadReference(name);
    for (const type of QUANT_CLUSTER_TYPES) {
      test(`gguf-cluster ${type}: 2 workers give one process's tokens on the same file`, async (t) => {
        const file = await fixtureGguf(t, name, type);
        const stages = await loadPipeline(await GgufCheckpoint.open(file), [], 'native');
        const expected = await greedyBatch(stages, ref.cases.map((c) => c.prompt_ids), 12);
        await Promise.all(stages.map((s) => s.close()));
        const cluster = await startCluster(t, file, 2, extra);
        for (const [i, c] of ref.cases.entries()) {
          const out = await bora(['generate', '--coordinator', cluster.file.coordinator, '--prompt-ids', c.prompt_ids.join(','), '--max-tokens', '12', '--ignore-eos', '--json']);
          const { tokens } = JSON.parse(out) as { tokens: number[] };
          assert.deepEqual(tokens, expected.tokens[i], `case ${i}`);
        }
      });
    }
  });
}
