/**
 * Golden runs through real processes: `bora up` with 1, 2, 3 (and 4 for tiny-mistral's 6 layers,
 * so ranges are uneven) workers, then `bora generate --coordinator` for every reference case.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fixtureDir, loadReference, type FixtureName } from '../../support/checkpoints';
import { bora, startCluster } from '../../support/cluster';

const MATRIX: [FixtureName, number[]][] = [
  ['tiny-mistral', [1, 2, 3, 4]],
  ['tiny-mixtral', [1, 2, 3]],
];

for (const [name, workerCounts] of MATRIX) {
  describe(`${name} through bora up + bora generate --coordinator`, () => {
    const ref = loadReference(name);
    for (const workers of workerCounts) {
      test(`${workers} worker(s): every case gives the reference tokens`, async (t) => {
        const cluster = await startCluster(t, fixtureDir(name), workers);
        const ranges = cluster.file.workers.map((w) => w.layers!).sort((a, b) => a[0] - b[0]);
        assert.equal(cluster.file.workers.length, workers);
        // cluster.json's ranges tile [0, L) with one contiguous range per worker.
        let next = 0;
        for (const [start, end] of ranges) {
          assert.equal(start, next, `ranges ${JSON.stringify(ranges)} are contiguous`);
          assert.ok(end > start);
          next = end;
        }
        assert.equal(next, Number(ref.config.num_hidden_layers));
        for (const [i, c] of ref.cases.entries()) {
          const out = await bora(['generate', '--coordinator', cluster.file.coordinator, '--prompt-ids', c.prompt_ids.join(','), '--max-tokens', String(c.greedy_tokens.length), '--ignore-eos', '--json']);
          const { tokens } = JSON.parse(out) as { tokens: number[] };
          assert.deepEqual(tokens, c.greedy_tokens, `case ${i} with ${workers} worker(s); ranges ${JSON.stringify(ranges)}`);
        }
      });
    }
  });
}
