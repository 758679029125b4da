/**
 * GGUF files through real processes: `bora up --model FILE.gguf` (coordinator and workers open
 * the file; the workers read only their own stages' tensors) gives the reference tokens, with
 * tiny-mistral split over 2 workers and tiny-mixtral's experts spread over 2. The float types
 * run now; the quantized ones join CLUSTER_GGUF_TYPES once the quantized kernels land.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { GgufWeightType } from '../../../common/model/gguf/gguf-writer';
import { loadReference, type FixtureName } from '../../support/checkpoints';
import { bora, startCluster } from '../../support/cluster';
import { fixtureGguf } from '../../support/gguf';

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
