/**
 * tiny-mixtral with its experts spread over worker processes (`bora up --placement experts`), 2
 * and 3 workers: cluster.json places every expert of every layer on at least two distinct
 * workers, every reference case gives its reference tokens, and the workers' metrics show where
 * the experts ran. With --expert-rebalance-ms, a skewed workload makes the coordinator re-place
 * the experts (hot ones get a third copy) and the tokens stay the reference. (Case 0's router choices through a RemoteExperts backend are checked in
 * test/integration/data-path/remote-experts.test.ts, where the engine's routes can be read.)
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { findSample, sampleValue, scrapeMetrics, type MetricSample } from '../../../common/metrics/exposition';
import { fixtureDir, loadReference } from '../../support/checkpoints';
import { fetchStatus } from '../../../cli/inference-client';
import { waitFor } from '../../../cli/processes';
import type { ClusterStatus } from '../../../common/wire/messages';
import { generateOn, greedyIds, startCluster } from '../../support/cluster';

const ref = loadReference('tiny-mixtral');
const LAYERS = Number(ref.config.num_hidden_layers);
const EXPERTS = Number(ref.config.num_local_experts);
const TOP_K = Number(ref.config.num_experts_per_tok);
const STEPS = 40;

function total(samples: readonly MetricSample[][], name: string, labels: Record<string, string> = {}): number {
  return samples.reduce((sum, s) => sum + sampleValue(s, name, labels), 0);
}

describe('tiny-mixtral with experts spread over workers (bora up --placement experts)', () => {
  for (const workers of [2, 3]) {
    test(`${workers} workers: every expert on two workers, every case the reference tokens`, async (t) => {
      const cluster = await startCluster(t, fixtureDir('tiny-mixtral'), workers, ['--placement', 'experts']);
      assert.equal(cluster.file.workers.length, workers);

      const holders = new Map<string, Set<string>>();
      for (const w of cluster.file.workers) {
        for (const { layer, experts } of w.experts ?? []) {
          for (const e of experts) holders.set(`${layer}:${e}`, (holders.get(`${layer}:${e}`) ?? new Set()).add(w.id));
        }
      }
      for (let layer = 0; layer < LAYERS; layer++) {
        for (let e = 0; e < EXPERTS; e++) {
          const on = [...(holders.get(`${layer}:${e}`) ?? [])];
          assert.ok(on.length >= 2, `expert ${e} of layer ${layer} is on ${on.length} worker(s): ${on.join(', ')}`);
        }
      }
      assert.equal(holders.size, LAYERS * EXPERTS, 'no expert outside the model is listed');

      const results = await Promise.all(ref.cases.map((c) => generateOn(cluster.file.coordinator, greedyIds(c.prompt_ids, STEPS))));
      results.forEach((r, i) => assert.deepEqual(r.tokens, ref.cases[i].greedy_tokens, `case ${i} with experts over ${workers} workers`));

      // Every token fed through every layer was routed to TOP_K experts, and each expert call was
      // served by some copy: in place where the stage's worker holds it, else over RunExperts.
      const samples = await Promise.all(cluster.file.workers.map((w) => scrapeMetrics(w.metrics!)));
      const fed = ref.cases.reduce((n, c) => n + c.prompt_ids.length + STEPS - 1, 0);
      let routed = 0;
      for (let layer = 0; layer < LAYERS; layer++) {
        for (let e = 0; e < EXPERTS; e++) {
          const labels = { layer: String(layer), expert: String(e) };
          routed += samples.reduce((n, s) => n + (findSample(s, 'bora_expert_tokens_total', labels)?.value ?? 0), 0);
        }
      }
      assert.equal(routed, fed * TOP_K * LAYERS, 'bora_expert_tokens_total counts every routed token once');
      const local = total(samples, 'bora_expert_replica_calls_total', { role: 'local' });
      const remote = total(samples, 'bora_expert_replica_calls_total', { role: 'primary' }) + total(samples, 'bora_expert_replica_calls_total', { role: 'replica' });
      assert.ok(local > 0, 'experts a stage worker holds run in place');
      if (workers === 2) assert.equal(remote, 0, 'with two workers each holds every expert: nothing crosses the network');
      else {
        assert.ok(remote > 0, `with three workers some experts run on another worker (local ${local}, remote ${remote})`);
        assert.ok(total(samples, 'bora_expert_dispatch_seconds_count') > 0, 'dispatch round trips are timed');
        assert.ok(total(samples, 'bora_expert_run_seconds_count') > 0, 'holders time the calls they serve');
      }
      assert.equal(total(samples, 'bora_expert_holder_failures_total'), 0);
    });
  }

  test('observed routing re-places experts: the hot ones get a third copy, tokens stay the reference', async (t) => {
    const cluster = await startCluster(t, fixtureDir('tiny-mixtral'), 3, ['--placement', 'experts', '--expert-rebalance-ms', '1000']);
    const copies = (s: ClusterStatus): number[] => {
      const count = new Map<string, number>();
      for (const w of s.workers) for (const { layer, experts } of w.experts) for (const e of experts) count.set(`${layer}:${e}`, (count.get(`${layer}:${e}`) ?? 0) + 1);
      return [...count.values()];
    };
    const before = await fetchStatus(cluster.file.coordinator);
    assert.ok(copies(before).every((n) => n === 2), 'without a load every expert has two copies');
    // One token repeated: every position routes to the same few experts of each layer.
    await generateOn(cluster.file.coordinator, greedyIds([1, ...Array.from({ length: 150 }, () => 415)], 8));
    const after = await waitFor('a plan placed by the routing load', 30_000, async () => {
      const s = await fetchStatus(cluster.file.coordinator);
      return s.settled && s.planEpoch > before.planEpoch ? s : undefined;
    });
    assert.ok(copies(after).some((n) => n >= 3), `a hot expert got a third copy: ${JSON.stringify(copies(after))}`);
    assert.ok(copies(after).every((n) => n >= 2), 'every expert keeps two copies');
    const results = await Promise.all(ref.cases.map((c) => generateOn(cluster.file.coordinator, greedyIds(c.prompt_ids, STEPS))));
    results.forEach((r, i) => assert.deepEqual(r.tokens, ref.cases[i].greedy_tokens, `case ${i} after the re-placement`));
  });
});
