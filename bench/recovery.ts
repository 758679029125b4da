/**
 * npm run bench:recovery — recovery time after a SIGKILL of a stage worker on the ~1B
 * checkpoint with 3 workers, without and with standby replicas (--replicas 2): the stall from
 * the kill to the next token, and the time to a new plan. Without a standby the new owner of the
 * dead worker's layers loads them first; with one, the plan promotes a worker that holds them.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readClusterFile } from '../cli/cluster';
import { fetchStatus, generateRemote } from '../cli/inference-client';
import { BENCH_DIR, MISTRAL_1B, ensureBenchModel } from './bench-model';

const BORA = join(__dirname, '..', 'cli', 'bora.js');
const STREAMS = 4;
const NEW_TOKENS = 48;

async function measure(dir: string, replicas: 1 | 2): Promise<{ stallMs: number; newPlanMs: number; epochs: number }> {
  const stateDir = mkdtempSync(join(tmpdir(), 'bora-recovery-'));
  const bora = (args: string[]): void => {
    execFileSync(process.execPath, [BORA, ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
  };
  bora(['up', '--model', dir, '--workers', '3', '--state-dir', stateDir, '--threads', '1', '--replicas', String(replicas), '--timeout-ms', '900000']);
  try {
    const file = readClusterFile(stateDir);
    const before = (await fetchStatus(file.coordinator)).planEpoch;
    const arrivals: number[] = [];
    let killedAt = 0;
    const ids = (s: number): number[] => [1, ...Array.from({ length: 15 }, (_, i) => 100 + ((s * 7919 + i * 104729) % 31000))];
    const streams = Array.from({ length: STREAMS }, (_, s) =>
      generateRemote(
        file.coordinator,
        { prompt: { kind: 'ids', ids: ids(s) }, maxTokens: NEW_TOKENS, sampling: { kind: 'greedy' }, stop: [], ignoreEos: true, returnFirstLogits: false },
        (e) => {
          if (e.type !== 'token') return;
          arrivals.push(performance.now());
          if (killedAt === 0 && arrivals.length === STREAMS * 6) {
            killedAt = performance.now();
            process.kill(file.workers.find((w) => w.id === 'w2')!.pid, 'SIGKILL');
          }
        },
        900_000,
      ),
    );
    let newPlanAt = 0;
    const watcher = (async () => {
      while (newPlanAt === 0) {
        await new Promise((r) => setTimeout(r, 100));
        if (killedAt === 0) continue;
        const s = await fetchStatus(file.coordinator).catch(() => undefined);
        if (s !== undefined && s.planEpoch > before && s.serving) newPlanAt = performance.now();
      }
    })();
    await Promise.all(streams);
    await watcher;
    const after = arrivals.filter((a) => a > killedAt).sort((a, b) => a - b);
    let stallMs = 0;
    let previous = killedAt;
    for (const a of after) {
      stallMs = Math.max(stallMs, a - previous);
      previous = a;
    }
    return { stallMs, newPlanMs: newPlanAt - killedAt, epochs: (await fetchStatus(file.coordinator)).planEpoch - before };
  } finally {
    bora(['down', '--state-dir', stateDir]);
    rmSync(stateDir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const dir = await ensureBenchModel('mistral-1b-bf16', MISTRAL_1B);
  const without = await measure(dir, 1);
  const withStandby = await measure(dir, 2);
  writeFileSync(join(BENCH_DIR, 'recovery.json'), JSON.stringify({ without, withStandby }, null, 2));
  console.log(`| replicas | longest stall after the kill | kill to new plan serving | new epochs |
|---|---|---|---|
| 1 (no standby) | ${without.stallMs.toFixed(0)} ms | ${without.newPlanMs.toFixed(0)} ms | ${without.epochs} |
| 2 (standby) | ${withStandby.stallMs.toFixed(0)} ms | ${withStandby.newPlanMs.toFixed(0)} ms | ${withStandby.epochs} |`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
