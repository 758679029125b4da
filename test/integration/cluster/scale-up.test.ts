/**
 * Scaling out under load (what a HorizontalPodAutoscaler does to the workers' StatefulSet,
 * deploy/k8s/): a worker that starts while 8 streams run joins by hand-over. The coordinator
 * plans it in as a planned change (reason `join`), the stages that move copy their KV caches to
 * their new holders, and the streams carry on: no sequence is replayed (no resume on any stream,
 * bora_resumes_total and bora_resumed_sequences_total stay 0, no recovery is recorded), the new
 * plan gives the new worker layers while streams are still running, and every output equals the
 * fault-free in-process reference.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fetchStatus } from '../../../cli/inference-client';
import { spawnDetached, stopProcesses, waitFor } from '../../../cli/processes';
import { findSample, parseExposition, type MetricSample } from '../../../common/metrics/exposition';
import { fixtureDir } from '../../support/checkpoints';
import { boraBin, startCluster, startGreedyStreams, untilStreamTokens, type TestCluster } from '../../support/cluster';
import { variedPrompts, inProcessGreedy } from '../../support/pipeline';

const MODEL = fixtureDir('tiny-mistral');
const TOKENS = 240;

const prompts = (count: number): number[][] => variedPrompts(count, { minTokens: 3, lengthCycle: 5, firstId: 90 });

const reference = (ps: readonly (readonly number[])[], steps: number): Promise<number[][]> => inProcessGreedy(MODEL, ps, steps);

async function coordinatorMetrics(cluster: TestCluster): Promise<MetricSample[]> {
  assert.ok(cluster.file.coordinatorMetrics !== undefined, 'cluster.json names the coordinator metrics address');
  return parseExposition(await (await fetch(`http://${cluster.file.coordinatorMetrics}/metrics`)).text());
}

describe('scaling out under load', () => {
  test('a worker added under load joins by hand-over: nothing replayed, outputs identical', async (t) => {
    const cluster = await startCluster(t, MODEL, 2);
    const ps = prompts(8);
    const expected = await reference(ps, TOKENS);
    const before = await fetchStatus(cluster.file.coordinator);
    const m0 = await coordinatorMetrics(cluster);
    assert.ok(!before.workers.some((w) => w.id === 'w3'), 'w3 is not in the cluster yet');

    const results = startGreedyStreams(cluster.file.coordinator, ps, TOKENS, { deadlineMs: 180_000 });
    await untilStreamTokens(results, 10);

    const pid = spawnDetached(
      process.execPath,
      [boraBin(), 'worker', '--etcd', cluster.file.etcd, '--id', 'w3', '--listen', '127.0.0.1:0', '--models-dir', join(MODEL, '..'), '--threads', '1', '--insecure'],
      join(cluster.stateDir, 'w3.log'),
    );
    t.after(() => stopProcesses([pid]));
    // The join plan serves (settled) with layers on w3; how far each stream was at that moment.
    const joined = await waitFor('a settled plan that gives w3 layers', 60_000, async () => {
      const s = await fetchStatus(cluster.file.coordinator);
      const w3 = s.workers.find((w) => w.id === 'w3');
      return s.settled && s.planEpoch > before.planEpoch && w3 !== undefined && w3.layerEnd > w3.layerStart ? s : undefined;
    }, 5);
    const progressAtJoin = results.map((r) => (r.finished ? TOKENS : r.tokens.length));
    await Promise.all(results.map((r) => r.done));

    t.diagnostic(`tokens per stream when the join plan served: ${progressAtJoin.join(', ')} of ${TOKENS}`);
    assert.ok(
      progressAtJoin.some((n) => n < TOKENS),
      'the new worker joined while streams were running (under load); a longer run (TOKENS) is needed on this machine',
    );
    results.forEach((r, i) => {
      assert.deepEqual(r.tokens, expected[i], `stream ${i}`);
      assert.equal(r.resumes, 0, `stream ${i} was replayed`);
    });
    assert.ok(joined.workers.filter((w) => w.layerEnd > w.layerStart).length === 3, 'the new plan spreads the layers over all three workers');

    const m = await coordinatorMetrics(cluster);
    // A series not exported yet (no failure reshard so far) counts as 0.
    const value = (samples: readonly MetricSample[], name: string, labels: Record<string, string>): number => findSample(samples, name, labels)?.value ?? 0;
    const delta = (name: string, labels: Record<string, string> = {}): number => value(m, name, labels) - value(m0, name, labels);
    assert.ok(findSample(m, 'bora_handover_pause_seconds_count') !== undefined && findSample(m, 'bora_resumes_total') !== undefined, 'the coordinator exports the metrics read here');
    assert.ok(delta('bora_reshards_total', { reason: 'join' }) >= 1, 'the plan change was a join');
    assert.ok(delta('bora_handover_pause_seconds_count') >= 1, 'the caches moved by hand-over');
    assert.equal(delta('bora_recovery_seconds_count'), 0, 'a join is no failure');
    assert.equal(delta('bora_resumed_sequences_total'), 0, 'no sequence was replayed');
    assert.equal(delta('bora_resumes_total'), 0, 'no request was resumed');
    assert.equal(delta('bora_reshards_total', { reason: 'failure' }), 0);
    assert.equal(delta('bora_request_tokens_sum', { kind: 'generated' }), ps.length * TOKENS);
  });
});
