/**
 * A coordinator's SIGTERM is a graceful stop (coordinator/graceful-stop.ts). The leader refuses
 * new requests (UNAVAILABLE, retryable; not ready on /readyz), lets the streams it runs finish,
 * resigns, and exits 0; a standby then leads at once rather than after the lease TTL, and a
 * client that knows both coordinators gets every token of a fault-free run. With no standby the
 * leader drains and exits the same way. A standby's SIGTERM disturbs nothing: the leader's
 * streams finish unreplayed, on the same plan.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, readFileSync } from 'node:fs';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { fetchStatus, generateOnce } from '../../../cli/inference-client';
import { freePort, isAlive, waitFor } from '../../../cli/processes';
import { BoraError } from '../../../common/errors';
import { parseExposition, sampleValue } from '../../../common/metrics/exposition';
import { fixtureDir } from '../../support/checkpoints';
import { boraBin, greedyIds, startCluster, startGreedyStreams, untilStreamTokens, type GreedyStream, type TestCluster } from '../../support/cluster';
import { variedPrompts, inProcessGreedy } from '../../support/pipeline';

const MODEL = fixtureDir('tiny-mistral');
const TOKENS = 120;
/** Long, so that a takeover that waited for the old leader's lease to expire would show. */
const LEASE_TTL_MS = 20_000;
/** A standby that leads this soon after its predecessor resigned did not wait for the lease. */
const TAKEOVER_BOUND_MS = 6000;

const prompts = (count: number): number[][] => variedPrompts(count, { minTokens: 3, lengthCycle: 7, firstId: 70 });

const reference = (ps: readonly (readonly number[])[], steps: number): Promise<number[][]> => inProcessGreedy(MODEL, ps, steps);

/** A coordinator run as this test's child, so that its exit status can be read. */
interface Coordinator {
  readonly address: string;
  readonly metrics: string;
  readonly logFile: string;
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
}

async function startCoordinator(t: TestContext, cluster: TestCluster, name: string, drainTimeoutMs = 60_000): Promise<Coordinator> {
  const address = `127.0.0.1:${await freePort()}`;
  const metrics = `127.0.0.1:${await freePort()}`;
  const logFile = join(cluster.stateDir, `${name}.log`);
  const log = openSync(logFile, 'a');
  const args = ['coordinator', '--etcd', cluster.file.etcd, '--listen', address, '--model', MODEL, '--insecure'];
  args.push('--lease-ttl-ms', String(LEASE_TTL_MS), '--metrics-port', metrics.split(':')[1], '--drain-timeout-ms', String(drainTimeoutMs));
  const child = spawn(process.execPath, [boraBin(), ...args], { stdio: ['ignore', log, log] });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  await waitFor(`${name} to answer`, 30_000, async () => ((await fetchStatus(address)) ? true : undefined));
  return { address, metrics, logFile, child, exited };
}

const startStreams = (addresses: string, ps: readonly (readonly number[])[]): GreedyStream[] => startGreedyStreams(addresses, ps, TOKENS);

/** Every stream got the reference tokens and was never replayed; on failure, the coordinators' log tails. */
function assertIdentical(streams: readonly GreedyStream[], expected: readonly number[][], what: string, cluster: TestCluster): void {
  streams.forEach((s, i) => {
    assert.deepEqual(s.tokens, expected[i], `${what}: stream ${i}`);
    if (s.resumes !== 0) assert.fail(`${what}: stream ${i} was replayed ${s.resumes} times\n${coordinatorLogs(cluster)}`);
  });
}

function coordinatorLogs(cluster: TestCluster): string {
  return ['coordinator', 'leader', 'standby']
    .map((name) => {
      const text = (() => {
        try {
          return readFileSync(join(cluster.stateDir, `${name}.log`), 'utf8');
        } catch {
          return '(none)';
        }
      })();
      return `--- ${name}.log\n${text.split('\n').filter((l) => !l.startsWith('!!')).slice(-25).join('\n')}`;
    })
    .join('\n');
}

async function serving(address: string): Promise<boolean> {
  return (await fetchStatus(address).catch(() => undefined))?.serving === true;
}

describe('graceful coordinator stop (SIGTERM)', () => {
  test('the leader drains and resigns: streams identical, a standby leads at once, the leader exits 0; alone, it drains and exits', async (t) => {
    const cluster = await startCluster(t, MODEL, 2, ['--lease-ttl-ms', String(LEASE_TTL_MS)]);
    const ps = prompts(6);
    const expected = await reference([...ps, [1, 415, 5565, 302]], TOKENS);

    // No standby: the leader of `bora up` finishes its streams, then exits.
    const first = startStreams(cluster.file.coordinator, ps);
    await untilStreamTokens(first, 10);
    process.kill(cluster.file.coordinatorPid, 'SIGTERM');
    await Promise.all(first.map((s) => s.done));
    assertIdentical(first, expected, 'no standby', cluster);
    await waitFor('the first coordinator to exit', 30_000, async () => (isAlive(cluster.file.coordinatorPid) ? undefined : true));

    // A new leader (it resigned: no lease to wait out) and a standby behind it.
    const leader = await startCoordinator(t, cluster, 'leader');
    await waitFor('the new leader to serve', 30_000, async () => ((await serving(leader.address)) ? true : undefined));
    const standby = await startCoordinator(t, cluster, 'standby');
    assert.equal((await fetchStatus(standby.address)).serving, false, 'the standby stands by while the leader lives');
    const epochBefore = (await fetchStatus(leader.address)).planEpoch;

    const both = `${leader.address},${standby.address}`;
    const streams = startStreams(both, ps);
    await untilStreamTokens(streams, 10);
    leader.child.kill('SIGTERM');
    // Draining: new requests are refused with a retryable UNAVAILABLE, and /readyz says so.
    await waitFor('the leader to refuse new requests', 10_000, async () => {
      const err = await generateOnce(leader.address, greedyIds([1, 2, 3], 2), () => undefined, Date.now() + 5000).then(() => undefined, (e: unknown) => e);
      return err instanceof BoraError && /stopping/.test(err.message) ? err : undefined;
    }, 20).then((err) => {
      assert.equal(err.code, 'UNAVAILABLE');
      assert.equal(err.retryable, true, 'a client may retry on another coordinator');
    });
    assert.ok(streams.some((s) => s.tokens.length < TOKENS), 'the refusal came while streams were still running');
    assert.equal((await fetch(`http://${leader.metrics}/readyz`)).status, 503, 'a stopping leader is not ready');
    assert.equal((await fetchStatus(leader.address)).serving, false, 'a stopping leader says it no longer serves');
    // A request sent during the drain lands on the standby once it leads.
    const late = startStreams(both, [[1, 415, 5565, 302]]);

    await Promise.all(streams.map((s) => s.done));
    const drainedAtMs = performance.now();
    assertIdentical(streams, expected, 'with a standby', cluster);
    await waitFor('the standby to lead', TAKEOVER_BOUND_MS, async () => ((await serving(standby.address)) ? true : undefined), 20);
    const takeoverMs = performance.now() - drainedAtMs;
    t.diagnostic(`the standby served ${Math.round(takeoverMs)} ms after the last stream ended (lease TTL ${LEASE_TTL_MS} ms)`);
    assert.ok(takeoverMs < TAKEOVER_BOUND_MS, `the standby served ${Math.round(takeoverMs)} ms after the last stream ended (lease TTL ${LEASE_TTL_MS} ms)`);
    assert.equal(await leader.exited, 0, 'the old leader exits 0');
    assert.match(readFileSync(leader.logFile, 'utf8'), /every request finished; resigning leadership/);

    await late[0].done;
    assert.deepEqual(late[0].tokens, expected[ps.length], 'the request sent during the drain');
    // Its re-send after the refusal reached the standby marked as a retry (bora_client_retries_total).
    const standbyMetrics = parseExposition(await (await fetch(`http://${standby.metrics}/metrics`)).text());
    assert.ok(sampleValue(standbyMetrics, 'bora_client_retries_total', { kind: 'retry' }) >= 1, 'the standby counted the client retry');
    assert.equal(sampleValue(standbyMetrics, 'bora_recovery_seconds_count'), 0, 'a hand-over is no failure');
    const after = await fetchStatus(standby.address);
    assert.ok(after.planEpoch > epochBefore, 'the new leader published its own epoch');
  });

  test('a leader whose drain times out hands its streams to the standby: each resumes there with the reference tokens', async (t) => {
    const cluster = await startCluster(t, MODEL, 2, ['--lease-ttl-ms', String(LEASE_TTL_MS)]);
    process.kill(cluster.file.coordinatorPid, 'SIGTERM');
    await waitFor('the first coordinator to exit', 30_000, async () => (isAlive(cluster.file.coordinatorPid) ? undefined : true));
    const leader = await startCoordinator(t, cluster, 'leader', 0);
    await waitFor('the new leader to serve', 30_000, async () => ((await serving(leader.address)) ? true : undefined));
    const standby = await startCoordinator(t, cluster, 'standby');
    const ps = prompts(4);
    const expected = await reference(ps, TOKENS);
    const streams = startStreams(`${leader.address},${standby.address}`, ps);
    await untilStreamTokens(streams, 10);
    leader.child.kill('SIGTERM');
    const stoppedAtMs = performance.now();
    await waitFor('the standby to lead', TAKEOVER_BOUND_MS, async () => ((await serving(standby.address)) ? true : undefined), 20);
    const takeoverMs = performance.now() - stoppedAtMs;
    t.diagnostic(`the standby served ${Math.round(takeoverMs)} ms after the SIGTERM (lease TTL ${LEASE_TTL_MS} ms)`);
    assert.equal(await leader.exited, 0, 'the old leader exits 0');
    await Promise.all(streams.map((s) => s.done));
    const resumed = streams.filter((s) => s.resumes > 0).length;
    streams.forEach((s, i) => assert.deepEqual(s.tokens, expected[i], `stream ${i}`));
    assert.ok(resumed > 0, 'streams cut at the drain timeout resumed on the standby');
    const m = parseExposition(await (await fetch(`http://${standby.metrics}/metrics`)).text());
    assert.ok(sampleValue(m, 'bora_client_retries_total', { kind: 'resume' }) >= resumed, 'the standby counted each resumed stream');
    assert.match(readFileSync(leader.logFile, 'utf8'), /still run after 0 ms; handing them to the next leader/);
  });

  test("a standby's SIGTERM disturbs nothing: the leader's streams finish unreplayed on the same plan", async (t) => {
    const cluster = await startCluster(t, MODEL, 2);
    const standby = await startCoordinator(t, cluster, 'standby');
    assert.equal((await fetchStatus(standby.address)).serving, false);
    const ps = prompts(6);
    const expected = await reference(ps, TOKENS);
    const before = await fetchStatus(cluster.file.coordinator);
    const streams = startStreams(`${cluster.file.coordinator},${standby.address}`, ps);
    await untilStreamTokens(streams, 10);
    standby.child.kill('SIGTERM');
    // Checked at the signal: on a quiet machine the streams may end before the standby has exited.
    assert.ok(streams.some((s) => s.tokens.length < TOKENS), 'the standby was signalled while streams were still running');
    assert.equal(await standby.exited, 0, 'the standby exits 0');
    await Promise.all(streams.map((s) => s.done));
    assertIdentical(streams, expected, 'standby stopped', cluster);
    const after = await fetchStatus(cluster.file.coordinator);
    assert.equal(after.serving, true, 'the leader still serves');
    assert.equal(after.planEpoch, before.planEpoch, 'no re-plan');
    // The leader's metrics saw 6 undisturbed requests: each moved duration, queue wait and tokens once; nothing resumed or recovered.
    const m = parseExposition(await (await fetch(`http://${cluster.file.coordinatorMetrics}/metrics`)).text());
    assert.equal(sampleValue(m, 'bora_request_duration_seconds_count'), ps.length);
    assert.equal(sampleValue(m, 'bora_queue_wait_seconds_count'), ps.length);
    assert.equal(sampleValue(m, 'bora_request_tokens_sum', { kind: 'generated' }), ps.length * TOKENS);
    assert.equal(sampleValue(m, 'bora_requests_total', { outcome: 'ok' }), ps.length);
    assert.equal(sampleValue(m, 'bora_resumes_total'), 0);
    assert.equal(sampleValue(m, 'bora_recovery_seconds_count'), 0);
    assert.equal(sampleValue(m, 'bora_client_retries_total', { kind: 'retry' }), 0, 'no client had to retry');
  });
});
