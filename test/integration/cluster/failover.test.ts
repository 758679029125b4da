/**
 * Failures of real processes in a local cluster (no network faults; chaos/ covers those):
 * a stage worker SIGKILLed mid-generation under 16 streams, a worker killed during a prefill,
 * two workers killed one after the other, a worker killed while a plan is being applied, every worker gone (requests wait, then UNAVAILABLE;
 * new workers bring service back), and the active coordinator killed (a standby takes over).
 * Every completed output is compared with the same request run alone, fault-free.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { join } from 'node:path';
import { fetchStatus } from '../../../cli/inference-client';
import { freePort, spawnDetached, stopProcesses, waitFor } from '../../../cli/processes';
import { Etcd3 } from 'etcd3';
import { EtcdKeys } from '../../../common/cluster/etcd-keys';
import { BoraError } from '../../../common/errors';
import { parseExposition, sampleValue, type MetricSample } from '../../../common/metrics/exposition';
import { workerId } from '../../../common/ids';
import type { GenerationEvent } from '../../../common/generation/request';
import { generateOnce, generateRemote } from '../../../cli/inference-client';
import { fixtureDir } from '../../support/checkpoints';
import { bora, boraBin, greedyIds, startCluster, type TestCluster } from '../../support/cluster';
import { variedPrompts, inProcessGreedy } from '../../support/pipeline';

const MODEL = fixtureDir('tiny-mistral');
const TOKENS = 160;

const prompts = (count: number): number[][] => variedPrompts(count, { minTokens: 4, lengthCycle: 11, firstId: 60, idSpan: 31000 });

const reference = (ps: readonly (readonly number[])[], steps: number): Promise<number[][]> => inProcessGreedy(MODEL, ps, steps);

interface Stream {
  readonly tokens: number[];
  readonly arrivalsMs: number[];
  resumes: number;
  readonly done: Promise<void>;
}

function startStreams(coordinator: string, ps: readonly (readonly number[])[], steps: number): Stream[] {
  return ps.map((p) => {
    const tokens: number[] = [];
    const arrivalsMs: number[] = [];
    const stream: Stream = {
      tokens,
      arrivalsMs,
      resumes: 0,
      done: generateRemote(
        coordinator,
        greedyIds(p, steps),
        (e: GenerationEvent) => {
          if (e.type === 'token') {
            assert.equal(e.index, tokens.length, 'no lost or repeated token');
            tokens.push(e.tokenId);
            arrivalsMs.push(performance.now());
          } else stream.resumes = e.resumes;
        },
        120_000,
      ),
    };
    return stream;
  });
}

async function untilTokens(streams: readonly Stream[], count: number): Promise<void> {
  await waitFor(`${count} tokens on every stream`, 60_000, async () => (streams.every((s) => s.tokens.length >= count) ? true : undefined), 5);
}

/** The coordinator's /metrics, parsed. */
async function coordinatorMetrics(cluster: TestCluster): Promise<MetricSample[]> {
  assert.ok(cluster.file.coordinatorMetrics !== undefined, 'cluster.json names the coordinator metrics address');
  return parseExposition(await (await fetch(`http://${cluster.file.coordinatorMetrics}/metrics`)).text());
}

function pidOf(cluster: TestCluster, id: string): number {
  const w = cluster.file.workers.find((x) => x.id === id);
  assert.ok(w !== undefined, `worker ${id} exists`);
  return w.pid;
}

describe('failover in a local cluster', () => {
  for (const replicas of [1, 2]) {
    test(`SIGKILL of a stage worker under 16 streams (replicas ${replicas}): all complete identically; recovery within TTL + 2 s`, async (t) => {
      const cluster = await startCluster(t, MODEL, 3, ['--replicas', String(replicas)]);
      const ps = prompts(16);
      const expected = await reference(ps, TOKENS);
      const streams = startStreams(cluster.file.coordinator, ps, TOKENS);
      await untilTokens(streams, 10);
      const killedAtMs = performance.now();
      process.kill(pidOf(cluster, 'w2'), 'SIGKILL');
      await Promise.all(streams.map((s) => s.done));
      streams.forEach((s, i) => assert.deepEqual(s.tokens, expected[i], `stream ${i}`));
      // Recovery: from the kill to the end of the longest silence after it (tokens already in
      // flight when the worker died can still arrive just after the kill).
      const arrivals = [killedAtMs, ...streams.flatMap((s) => s.arrivalsMs).filter((a) => a > killedAtMs)].sort((a, b) => a - b);
      let stallEnd = killedAtMs;
      let longest = 0;
      for (let i = 1; i < arrivals.length; i++) {
        if (arrivals[i] - arrivals[i - 1] > longest) {
          longest = arrivals[i] - arrivals[i - 1];
          stallEnd = arrivals[i];
        }
      }
      const recoveryMs = stallEnd - killedAtMs;
      t.diagnostic(`recovery (fault to next token) with replicas ${replicas}: ${recoveryMs.toFixed(0)} ms`);
      assert.ok(streams.some((s) => s.resumes > 0), 'sequences were resumed on a new plan');
      assert.ok(recoveryMs < 3000 + 2000, `recovery (fault to next token) took ${recoveryMs.toFixed(0)} ms`);
      const status = await fetchStatus(cluster.file.coordinator);
      assert.ok(status.planEpoch >= 2 && status.workers.every((w) => w.id !== 'w2' || w.layerEnd === w.layerStart), 'a new plan over the survivors');
      // The failover moved the coordinator's recovery and resume metrics.
      const m = await coordinatorMetrics(cluster);
      assert.ok(sampleValue(m, 'bora_recovery_seconds_count') >= 1, 'bora_recovery_seconds recorded the recovery');
      assert.ok(sampleValue(m, 'bora_recovery_seconds_sum') <= (sampleValue(m, 'bora_recovery_seconds_count') * (3000 + 2000)) / 1000);
      assert.equal(sampleValue(m, 'bora_resumed_sequences_total'), streams.filter((s) => s.resumes > 0).length);
      assert.equal(sampleValue(m, 'bora_resumes_total'), streams.reduce((n, s) => n + s.resumes, 0));
      assert.equal(sampleValue(m, 'bora_request_duration_seconds_count'), ps.length);
      assert.equal(sampleValue(m, 'bora_queue_wait_seconds_count'), ps.length, 'one queue wait per request, not again on resume');
      assert.equal(sampleValue(m, 'bora_request_tokens_sum', { kind: 'generated' }), ps.length * TOKENS);
    });
  }

  test('a worker killed during a prefill, then a second one: all requests complete identically', async (t) => {
    const cluster = await startCluster(t, MODEL, 4);
    // Long prompts (the scheduler feeds at most 512 tokens per micro-batch) keep the prefill going.
    const ps = Array.from({ length: 6 }, (_, i) => [1, ...Array.from({ length: 900 + i * 40 }, (_, j) => 100 + ((i * 31 + j * 17) % 30000))]);
    const expected = await reference(ps, 24);
    const streams = startStreams(cluster.file.coordinator, ps, 24);
    await new Promise((r) => setTimeout(r, 150)); // inside the prefill
    assert.ok(streams.every((s) => s.tokens.length === 0), 'still prefilling when the first worker dies');
    process.kill(pidOf(cluster, 'w3'), 'SIGKILL');
    await untilTokens(streams, 1);
    process.kill(pidOf(cluster, 'w1'), 'SIGKILL');
    await Promise.all(streams.map((s) => s.done));
    streams.forEach((s, i) => assert.deepEqual(s.tokens, expected[i], `stream ${i}`));
  });

  test('a worker killed while a plan is being applied: all requests complete identically', async (t) => {
    const cluster = await startCluster(t, MODEL, 3);
    const ps = prompts(8);
    const expected = await reference(ps, TOKENS);
    const streams = startStreams(cluster.file.coordinator, ps, TOKENS);
    await untilTokens(streams, 10);
    const before = await fetchStatus(cluster.file.coordinator);

    // w4 joins and is frozen the moment its registration appears in etcd, inside the coordinator's
    // re-plan debounce: the join plan gives it layers it can never load, so that plan stays
    // "being applied" (the other workers have moved to it; the coordinator waits for w4).
    const etcd = new Etcd3({ hosts: cluster.file.etcd });
    t.after(() => etcd.close());
    const watcher = await etcd.watch().key(new EtcdKeys().member(workerId('w4'))).create();
    const registered = new Promise<void>((resolve) => watcher.once('put', () => resolve()));
    const pid = spawnDetached(
      process.execPath,
      [boraBin(), 'worker', '--etcd', cluster.file.etcd, '--id', 'w4', '--listen', '127.0.0.1:0', '--models-dir', join(MODEL, '..'), '--threads', '1', '--insecure'],
      join(cluster.stateDir, 'w4.log'),
    );
    t.after(() => stopProcesses([pid]));
    await registered;
    process.kill(pid, 'SIGSTOP');
    await watcher.cancel();
    const applying = await waitFor('the join plan to give w4 layers', 20_000, async () => {
      const s = await fetchStatus(cluster.file.coordinator);
      const w4 = s.workers.find((w) => w.id === 'w4');
      return s.planEpoch > before.planEpoch && w4 !== undefined && w4.layerEnd > w4.layerStart ? s : undefined;
    });
    assert.equal(applying.settled, false, 'the plan is still being applied');
    assert.equal(applying.workers.find((w) => w.id === 'w4')?.ready, false, 'w4 has not loaded its layers');

    process.kill(pid, 'SIGKILL');
    await Promise.all(streams.map((s) => s.done));
    streams.forEach((s, i) => assert.deepEqual(s.tokens, expected[i], `stream ${i}`));
    await waitFor('a plan over the survivors to replace the one being applied', 20_000, async () => {
      const s = await fetchStatus(cluster.file.coordinator);
      return s.settled && s.planEpoch > applying.planEpoch && !s.workers.some((w) => w.id === 'w4') ? s : undefined;
    });
    const again = startStreams(cluster.file.coordinator, ps.slice(0, 2), 24);
    await Promise.all(again.map((s) => s.done));
    again.forEach((s, i) => assert.deepEqual(s.tokens, expected[i].slice(0, 24), `stream ${i} on the new plan`));
  });

  test('with every worker gone requests wait, then fail UNAVAILABLE; new workers bring service back', async (t) => {
    const cluster = await startCluster(t, MODEL, 2);
    await stopProcesses(cluster.file.workers.map((w) => w.pid), 100);
    await waitFor('the coordinator to notice', 10_000, async () => ((await fetchStatus(cluster.file.coordinator)).workers.length === 0 ? true : undefined));
    const started = Date.now();
    const err = await generateRemote(cluster.file.coordinator, greedyIds([1, 415, 5565], 5), () => undefined, 2500).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof BoraError && err.code === 'UNAVAILABLE', `UNAVAILABLE, got ${String(err)}`);
    assert.ok(Date.now() - started >= 2000, 'the request waited for its deadline');
    const pids = [1, 2].map((i) =>
      spawnDetached(process.execPath, [boraBin(), 'worker', '--etcd', cluster.file.etcd, '--id', `n${i}`, '--listen', '127.0.0.1:0', '--models-dir', join(MODEL, '..'), '--threads', '1', '--insecure'], join(cluster.stateDir, `n${i}.log`)),
    );
    t.after(() => stopProcesses(pids));
    const [expected] = await reference([[1, 415, 5565]], 8);
    const tokens: number[] = [];
    await generateRemote(cluster.file.coordinator, greedyIds([1, 415, 5565], 8), (e) => e.type === 'token' && tokens.push(e.tokenId), 60_000);
    assert.deepEqual(tokens, expected);
  });

  test('bora drain moves a worker away under load without replaying anything, then stops it: outputs identical', async (t) => {
    const cluster = await startCluster(t, MODEL, 3);
    const ps = prompts(8);
    const expected = await reference(ps, TOKENS);
    const streams = startStreams(cluster.file.coordinator, ps, TOKENS);
    await untilTokens(streams, 10);
    const out = JSON.parse(await bora(['drain', '--state-dir', cluster.stateDir, 'w2'])) as { planEpoch: number; stopped: boolean };
    await Promise.all(streams.map((s) => s.done));
    streams.forEach((s, i) => assert.deepEqual(s.tokens, expected[i], `stream ${i}`));
    // A drain is planned: the caches moved to the new stages (plan handover), nothing was replayed.
    streams.forEach((s, i) => assert.equal(s.resumes, 0, `stream ${i} was replayed`));
    const m = await coordinatorMetrics(cluster);
    assert.equal(sampleValue(m, 'bora_recovery_seconds_count'), 0, 'a drain is no failure: nothing to recover from');
    assert.ok(sampleValue(m, 'bora_handover_pause_seconds_count') >= 1, 'the hand-over pause was recorded');
    assert.ok(sampleValue(m, 'bora_reshards_total', { reason: 'operator' }) >= 1);
    const status = await fetchStatus(cluster.file.coordinator);
    assert.ok(out.planEpoch >= 2 && status.planEpoch >= out.planEpoch);
    assert.ok(!status.workers.some((w) => w.id === 'w2' && w.layerEnd > w.layerStart), 'w2 holds no layers');
    assert.equal(out.stopped, true);
    await waitFor('w2 to exit', 10_000, async () => {
      try {
        process.kill(pidOf(cluster, 'w2'), 0);
        return undefined;
      } catch {
        return true;
      }
    });
  });

  test('killing the active coordinator: a standby takes over and requests succeed on retry', async (t) => {
    const cluster = await startCluster(t, MODEL, 2);
    const standbyAddress = `127.0.0.1:${await freePort()}`;
    const standby = spawnDetached(
      process.execPath,
      [boraBin(), 'coordinator', '--etcd', cluster.file.etcd, '--listen', standbyAddress, '--model', MODEL, '--insecure'],
      join(cluster.stateDir, 'standby.log'),
    );
    t.after(() => stopProcesses([standby]));
    await waitFor('the standby to answer', 20_000, async () => ((await fetchStatus(standbyAddress)) ? true : undefined));
    assert.equal((await fetchStatus(standbyAddress)).serving, false, 'the standby does not serve while the leader lives');
    const refused = await generateOnce(standbyAddress, greedyIds([1, 2, 3], 3), () => undefined, Date.now() + 5000).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(refused instanceof BoraError && refused.code === 'UNAVAILABLE', 'a standby answers UNAVAILABLE');
    const [expected] = await reference([[1, 415, 5565, 302]], 12);
    process.kill(cluster.file.coordinatorPid, 'SIGKILL');
    const killedAt = Date.now();
    // A client that knows both addresses retries on UNAVAILABLE until the standby serves.
    const tokens: number[] = [];
    await generateRemote(`${cluster.file.coordinator},${standbyAddress}`, greedyIds([1, 415, 5565, 302], 12), (e) => e.type === 'token' && tokens.push(e.tokenId), 60_000);
    const takeoverMs = Date.now() - killedAt;
    assert.deepEqual(tokens, expected);
    assert.equal((await fetchStatus(standbyAddress)).serving, true);
    assert.ok(takeoverMs < 3000 + 4000, `takeover took ${takeoverMs} ms`);
  });
});
