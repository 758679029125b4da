#!/usr/bin/env node
/**
 * The chaos game day: node dist/chaos/main.js [--scenarios S1,S2] [--short] [--out DIR]
 *   [--subnet 10.77.0] [--lease-ttl-ms 3000] [--replicas 1|2] [--soak-ms 300000] [--seed 7]
 *
 * Runs the scenarios of ../shared/docs/FAULTS.md against the compiled product, each on a fresh
 * cluster in its own network namespaces, writes OUT/report.md and OUT/report.json, and exits 1
 * when a scenario failed (a skipped one, for a missing capability, does not fail the run).
 * Needs root. Whatever happens (an error, Ctrl-C, SIGTERM) the namespaces, links and processes
 * it made are removed; a run killed outright leaves them for the next run to remove.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { cpus, release, setPriority } from 'node:os';
import { join, resolve } from 'node:path';
import { intFlag, parseFlags } from '../cli/args';
import { quietIpServernameWarning } from '../cli/quiet-warnings';
import { parseModelConfig } from '../common/model/config';
import { snapshotBuild } from './build-snapshot';
import { describeCapabilities, probeCapabilities } from './capabilities';
import { acquireLock, releaseLock, removeStale } from './netns';
import { overallPassed, writeReport } from './report';
import { runScenario, type ScenarioResult } from './runner';
import { SCENARIO_IDS, type ChaosEnv, type ScenarioId } from './scenario';
import { scenarioById } from './scenarios';

const FLAGS = {
  scenarios: { type: 'string' },
  short: { type: 'boolean' },
  out: { type: 'string' },
  subnet: { type: 'string' },
  'lease-ttl-ms': { type: 'string' },
  replicas: { type: 'string' },
  'soak-ms': { type: 'string' },
  seed: { type: 'string' },
} as const;

/** The model every scenario serves: small enough for two cores, three pipeline stages of two layers. */
const MODEL_ARGS = ['--arch', 'mistral', '--hidden', '128', '--layers', '6', '--heads', '4', '--kv-heads', '2', '--intermediate', '384', '--vocab', '32000', '--dtype', 'bf16', '--seed', '3'];
const MODEL_ID = 'chaos-mistral';
/** E1's model: three layers of 8 experts (top 2), so a fourth worker holds experts and no stage. */
const EXPERTS_MODEL_ARGS = ['--arch', 'mixtral', '--hidden', '128', '--layers', '3', '--heads', '4', '--kv-heads', '2', '--intermediate', '256', '--experts', '8', '--top-k', '2', '--vocab', '32000', '--dtype', 'bf16', '--seed', '5'];
const EXPERTS_MODEL_ID = 'chaos-mixtral';
const DEFAULT_SOAK_MS = 300_000;
const HARNESS_NICE = -10;

function log(line: string): void {
  process.stderr.write(`[chaos ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

function parseScenarioIds(value: string | undefined): ScenarioId[] {
  if (value === undefined) return [...SCENARIO_IDS];
  const ids = value.split(',').map((s) => s.trim().toUpperCase()).filter((s) => s !== '');
  for (const id of ids) if (!(SCENARIO_IDS as readonly string[]).includes(id)) throw new Error(`unknown scenario "${id}"; known: ${SCENARIO_IDS.join(', ')}`);
  return ids as ScenarioId[];
}

function makeModel(bora: string, modelsDir: string, id: string, args: readonly string[]): { modelDir: string; hiddenSize: number; vocabSize: number } {
  const modelDir = join(modelsDir, id);
  rmSync(modelDir, { recursive: true, force: true });
  const made = spawnSync(process.execPath, [bora, 'make-model', ...args, '--out', modelDir], { encoding: 'utf8' });
  if (made.status !== 0) throw new Error(`bora make-model failed: ${made.stderr}`);
  const config = parseModelConfig(readFileSync(join(modelDir, 'config.json'), 'utf8'), join(modelDir, 'config.json'));
  return { modelDir, hiddenSize: config.hiddenSize, vocabSize: config.vocabSize };
}

/** Removes the topology and the lock however the process ends. */
function installCleanup(): void {
  let cleaned = false;
  const cleanup = (): void => {
    if (cleaned) return;
    cleaned = true;
    removeStale();
    releaseLock();
  };
  process.on('exit', cleanup);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      log(`${signal}: removing the topology`);
      cleanup();
      process.exit(130);
    });
  }
  process.on('uncaughtException', (err) => {
    log(`uncaught: ${err.stack ?? err.message}`);
    cleanup();
    process.exit(2);
  });
}

async function main(argv: string[]): Promise<number> {
  quietIpServernameWarning(); // the secure scenarios dial nodes by IP (DEP0123 on every TLS call)
  const { values: v } = parseFlags(argv, FLAGS);
  const ids = parseScenarioIds(v.scenarios);
  const outDir = resolve(v.out ?? 'chaos-report');
  const short = v.short === true;
  const caps = probeCapabilities();
  for (const line of describeCapabilities(caps)) log(line);
  if (caps.root.ok) {
    acquireLock();
    installCleanup();
    // The fault proxies run on this process's event loop: on a loaded machine a starved harness
    // would delay every proxied link beyond the fault asked for. The nodes go back to nice 0
    // (cluster.ts), so this only ranks the harness above them and the machine's other work.
    try {
      setPriority(HARNESS_NICE);
      log(`harness at nice ${HARNESS_NICE}`);
    } catch (err) {
      log(`could not raise the harness's priority: ${(err as Error).message}`);
    }
  }
  const boraJs = snapshotBuild(outDir);
  const model = makeModel(boraJs, join(outDir, 'models'), MODEL_ID, MODEL_ARGS);
  const expertsModel = makeModel(boraJs, join(outDir, 'models'), EXPERTS_MODEL_ID, EXPERTS_MODEL_ARGS);
  if (expertsModel.vocabSize !== model.vocabSize) throw new Error('both chaos models must share a vocabulary (requests are made once)');
  const env: ChaosEnv = Object.freeze({
    caps,
    short,
    outDir,
    modelDir: model.modelDir,
    expertsModelDir: expertsModel.modelDir,
    modelsDir: join(outDir, 'models'),
    boraJs,
    hiddenSize: model.hiddenSize,
    vocabSize: model.vocabSize,
    subnet: v.subnet ?? '10.77.0',
    leaseTtlMs: intFlag(v['lease-ttl-ms'], '--lease-ttl-ms', 3000),
    replicas: intFlag(v.replicas, '--replicas', 1),
    soakMs: intFlag(v['soak-ms'], '--soak-ms', DEFAULT_SOAK_MS),
    seed: intFlag(v.seed, '--seed', 7),
  });
  const startedAt = new Date().toISOString();
  const results: ScenarioResult[] = [];
  for (const id of ids) {
    const scenario = scenarioById(id);
    log(`${id}: ${scenario.title}`);
    const startedMs = performance.now();
    const result = { ...(await runScenario(scenario, env, (line) => log(`${id}: ${line}`))), wallMs: Math.round(performance.now() - startedMs) };
    const m = result.measures;
    log(`${id}: ${result.status.toUpperCase()}${result.reason === null ? '' : ` — ${result.reason}`}${m === null ? '' : ` (detection ${m.detectionMs ?? '–'} ms, recovery ${m.recoveryMs ?? '–'} ms)`}; ${(result.wallMs / 1000).toFixed(0)} s in all`);
    results.push(result);
  }
  const report = {
    startedAt,
    finishedAt: new Date().toISOString(),
    short,
    machine: `${cpus().length} cores, Linux ${release()}, Node ${process.version}`,
    capabilities: describeCapabilities(caps),
    capabilityProbe: caps,
    model: `${MODEL_ID} (make-model ${MODEL_ARGS.join(' ')}); E1: ${EXPERTS_MODEL_ID} (make-model ${EXPERTS_MODEL_ARGS.join(' ')})`,
    leaseTtlMs: env.leaseTtlMs,
    replicas: env.replicas,
    results,
  };
  const files = writeReport(outDir, report);
  log(`report: ${files.markdown} and ${files.json}`);
  return overallPassed(report) ? 0 : 1;
}

// Exit explicitly once the report is written: a socket a node left half-open must not keep the
// harness (and the game-day test waiting for it) alive.
main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    log(`error: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(2);
  },
);
