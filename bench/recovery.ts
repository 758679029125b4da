/**
 * npm run bench:recovery — recovery time after a SIGKILL of a stage worker on the ~1B
 * checkpoint with 3 workers, without and with standby replicas (--replicas 2): the stall from
 * the kill to the next token, and the time to a new plan. Without a standby the new owner of the
 * dead worker's layers loads them first; with one, the plan promotes a worker that holds them.
 * Then a planned drain of the same worker: the longest gap between two tokens of a stream while
 * the caches move, against the median gap (a normal step) before it.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clusterAccess, readClusterFile } from '../cli/cluster';
import { fetchStatus, generateRemote } from '../cli/inference-client';
import { BENCH_DIR, MISTRAL_1B, ensureBenchModel } from './bench-model';
import { sampleValue, scrapeMetrics } from '../common/metrics/exposition';
import { median } from './stats';

const BORA = join(__dirname, '..', 'cli', 'bora.js');
const STREAMS = 4;
const NEW_TOKENS = 48;
/** A drain loads the drained layers on the others first (while serving): streams must outlast it. */
const DRAIN_NEW_TOKENS = 160;

interface Measured {
  readonly stallMs: number;
  readonly newPlanMs: number;
  readonly epochs: number;
  /** Median gap between two tokens of one stream before the fault: a normal step. */
  readonly stepMs: number;
  /** Longest gap between two tokens of one stream that spans the fault. */
  readonly worstStreamGapMs: number;
  /** Drain: how long the coordinator held micro-batches back for the hand-over (its metric). */
  readonly handoverPauseMs: number;
}

async function measure(dir: string, replicas: 1 | 2, fault: 'kill' | 'drain'): Promise<Measured> {
  const stateDir = mkdtempSync(join(tmpdir(), 'bora-recovery-'));
  const bora = (args: string[]): void => {
    execFileSync(process.execPath, [BORA, ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
  };
  bora(['up', '--model', dir, '--workers', '3', '--state-dir', stateDir, '--threads', '1', '--replicas', String(replicas), '--timeout-ms', '900000']);
  try {
    const file = readClusterFile(stateDir);
    const admin = clusterAccess(file, 'admin');
    const before = (await fetchStatus(file.coordinator, undefined, admin)).planEpoch;
    const arrivals: number[] = [];
    const perStream: number[][] = Array.from({ length: STREAMS }, () => []);
    let killedAt = 0;
    let drained: Promise<void> = Promise.resolve();
    const ids = (s: number): number[] => [1, ...Array.from({ length: 15 }, (_, i) => 100 + ((s * 7919 + i * 104729) % 31000))];
    const streams = Array.from({ length: STREAMS }, (_, s) =>
      generateRemote(
        file.coordinator,
        { prompt: { kind: 'ids', ids: ids(s) }, maxTokens: fault === 'drain' ? DRAIN_NEW_TOKENS : NEW_TOKENS, sampling: { kind: 'greedy' }, stop: [], ignoreEos: true, returnFirstLogits: false },
        (e) => {
          if (e.type !== 'token') return;
          arrivals.push(performance.now());
          perStream[s].push(performance.now());
          if (killedAt === 0 && arrivals.length === STREAMS * 6) {
            killedAt = performance.now();
            if (fault === 'kill') process.kill(file.workers.find((w) => w.id === 'w2')!.pid, 'SIGKILL');
            else drained = new Promise((resolve, reject) => execFile(process.execPath, [BORA, 'drain', '--state-dir', stateDir, 'w2'], (err) => (err === null ? resolve() : reject(err))));
          }
        },
        900_000,
        clusterAccess(file, 'client'),
      ),
    );
    let newPlanAt = 0;
    const watcher = (async () => {
      while (newPlanAt === 0) {
        await new Promise((r) => setTimeout(r, 100));
        if (killedAt === 0) continue;
        const s = await fetchStatus(file.coordinator, undefined, admin).catch(() => undefined);
        if (s !== undefined && s.planEpoch > before && s.serving) newPlanAt = performance.now();
      }
    })();
    await Promise.all(streams);
    await watcher;
    await drained;
    const after = arrivals.filter((a) => a > killedAt).sort((a, b) => a - b);
    let stallMs = 0;
    let previous = killedAt;
    for (const a of after) {
      stallMs = Math.max(stallMs, a - previous);
      previous = a;
    }
    const gaps = perStream.flatMap((times) => times.slice(1).map((t, i) => ({ from: times[i], gapMs: t - times[i] })));
    const stepMs = median(gaps.filter((g) => g.from < killedAt && g.from + g.gapMs < killedAt).map((g) => g.gapMs));
    const worstStreamGapMs = Math.max(...gaps.filter((g) => g.from + g.gapMs >= killedAt).map((g) => g.gapMs));
    const metrics = file.coordinatorMetrics === undefined ? [] : await scrapeMetrics(file.coordinatorMetrics);
    const handoverPauseMs = (1000 * sampleValue(metrics, 'bora_handover_pause_seconds_sum')) / Math.max(1, sampleValue(metrics, 'bora_handover_pause_seconds_count'));
    return { stallMs, newPlanMs: newPlanAt - killedAt, epochs: (await fetchStatus(file.coordinator, undefined, admin)).planEpoch - before, stepMs, worstStreamGapMs, handoverPauseMs };
  } finally {
    bora(['down', '--state-dir', stateDir]);
    rmSync(stateDir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const dir = await ensureBenchModel('mistral-1b-bf16', MISTRAL_1B);
  // BORA_BENCH_ONLY=drain measures the drain alone (a quicker check).
  const only = process.env.BORA_BENCH_ONLY;
  const none: Measured = { stallMs: NaN, newPlanMs: NaN, epochs: NaN, stepMs: NaN, worstStreamGapMs: NaN, handoverPauseMs: NaN };
  const without = only === undefined || only === 'kill' ? await measure(dir, 1, 'kill') : none;
  const withStandby = only === undefined || only === 'kill' ? await measure(dir, 2, 'kill') : none;
  const drain = only === undefined || only === 'drain' ? await measure(dir, 1, 'drain') : none;
  const drainStandby = only === undefined || only === 'drain' ? await measure(dir, 2, 'drain') : none;
  writeFileSync(join(BENCH_DIR, 'recovery.json'), JSON.stringify({ without, withStandby, drain, drainStandby }, null, 2));
  console.log(`| replicas | longest stall after the kill | kill to new plan serving | new epochs |
|---|---|---|---|
| 1 (no standby) | ${without.stallMs.toFixed(0)} ms | ${without.newPlanMs.toFixed(0)} ms | ${without.epochs} |
| 2 (standby) | ${withStandby.stallMs.toFixed(0)} ms | ${withStandby.newPlanMs.toFixed(0)} ms | ${withStandby.epochs} |

| planned drain of w2 (caches moved) | replicas 1 (survivors load its layers) | replicas 2 (a standby holds them) |
|---|---|---|
| normal step (median gap between two tokens of a stream before) | ${drain.stepMs.toFixed(0)} ms | ${drainStandby.stepMs.toFixed(0)} ms |
| longest gap of a stream during the drain | ${drain.worstStreamGapMs.toFixed(0)} ms (${(drain.worstStreamGapMs / drain.stepMs).toFixed(2)}x a step) | ${drainStandby.worstStreamGapMs.toFixed(0)} ms (${(drainStandby.worstStreamGapMs / drainStandby.stepMs).toFixed(2)}x a step) |
| micro-batches held back for the hand-over (quiesce + cache copy + switch) | ${drain.handoverPauseMs.toFixed(0)} ms | ${drainStandby.handoverPauseMs.toFixed(0)} ms |
| drain start to the new plan published | ${drain.newPlanMs.toFixed(0)} ms | ${drainStandby.newPlanMs.toFixed(0)} ms |`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
