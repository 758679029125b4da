/**
 * npm run bench:experts — expert parallelism on a ~1B Mixtral-shaped random checkpoint with 3
 * worker processes on this machine: experts local to each stage (`bora up --placement layers`)
 * against experts spread over the workers, two copies each (`--placement experts`).
 *
 * Measured through the client API: batch-1 decode tokens/s (median of 3 requests) and aggregate
 * tokens/s of 8 concurrent streams. Dispatch cost from the workers' /metrics (deltas over each
 * phase): RunExperts round trips (bora_expert_dispatch_seconds) against the holders' own time for
 * the calls they served (bora_expert_run_seconds: engine queueing + compute) and against the
 * stages' forward time. Prints a markdown table and writes .bench/experts.json.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { clusterAccess, downCommand, readClusterFile, upCommand, type ClusterFile } from '../cli/cluster';
import { generateRemote } from '../cli/inference-client';
import type { GenerationEvent, GenerationRequest } from '../common/generation/request';
import { scrapeMetrics, type MetricSample } from '../common/metrics/exposition';
import { Checkpoint } from '../common/model/checkpoint';
import type { ModelConfig } from '../common/model/config';
import { elementCount } from '../common/model/safetensors';
import { stageTensorSpecs } from '../common/model/weights';
import { BENCH_DIR, MIXTRAL_1B, ensureBenchModel } from './bench-model';
import { formatRate, median } from './stats';

const WORKERS = 3;
const PROMPT_TOKENS = 16;
const DECODE_TOKENS = 24;
const BATCH1_RUNS = 3;
const CONCURRENT = 8;
const PLACEMENTS = ['layers', 'experts'] as const;
type Placement = (typeof PLACEMENTS)[number];

interface StreamResult {
  readonly tokens: number;
  readonly ttftMs: number;
  readonly totalMs: number;
}

function promptIds(seed: number, vocab: number): number[] {
  return [1, ...Array.from({ length: PROMPT_TOKENS - 1 }, (_, i) => 2 + ((seed * 7919 + i * 104729) % (vocab - 2)))];
}

function request(ids: readonly number[], maxTokens: number): GenerationRequest {
  return { prompt: { kind: 'ids', ids }, maxTokens, sampling: { kind: 'greedy' }, stop: [], ignoreEos: true, returnFirstLogits: false };
}

async function stream(file: ClusterFile, ids: readonly number[], maxTokens: number): Promise<StreamResult> {
  let finish: Extract<GenerationEvent, { type: 'finish' }> | undefined;
  await generateRemote(file.coordinator, request(ids, maxTokens), (e) => (finish = e.type === 'finish' ? e : finish), 600_000, clusterAccess(file, 'client'));
  if (finish === undefined) throw new Error('stream ended without a finish event');
  return { tokens: finish.generatedTokens, ttftMs: finish.timeToFirstTokenMs, totalMs: finish.totalMs };
}

/** Decode tokens/s of one stream: the tokens after the first over the time after the first. */
const decodeRate = (r: StreamResult): number => (r.tokens - 1) / ((r.totalMs - r.ttftMs) / 1000);

/** Every worker's samples summed by series name, over all labels but `role` (kept as name{role}). */
async function scrapeTotals(file: ClusterFile): Promise<Map<string, number>> {
  const totals = new Map<string, number>();
  const all: MetricSample[][] = await Promise.all(file.workers.map((w) => scrapeMetrics(w.metrics!)));
  for (const s of all.flat()) {
    const key = s.labels.role === undefined ? s.name : `${s.name}{${s.labels.role}}`;
    totals.set(key, (totals.get(key) ?? 0) + s.value);
  }
  return totals;
}

interface Dispatch {
  readonly forwardSeconds: number;
  readonly roundTrips: number;
  readonly roundTripSeconds: number;
  readonly holderCalls: number;
  readonly holderSeconds: number;
  readonly localCalls: number;
  readonly remoteCalls: number;
}

function dispatchBetween(a: Map<string, number>, b: Map<string, number>): Dispatch {
  const d = (name: string): number => (b.get(name) ?? 0) - (a.get(name) ?? 0);
  return {
    forwardSeconds: d('bora_stage_forward_seconds_sum'),
    roundTrips: d('bora_expert_dispatch_seconds_count'),
    roundTripSeconds: d('bora_expert_dispatch_seconds_sum'),
    holderCalls: d('bora_expert_run_seconds_count'),
    holderSeconds: d('bora_expert_run_seconds_sum'),
    localCalls: d('bora_expert_replica_calls_total{local}'),
    remoteCalls: d('bora_expert_replica_calls_total{primary}') + d('bora_expert_replica_calls_total{replica}'),
  };
}

interface PhaseResult {
  readonly tokensPerSecond: number;
  readonly generatedTokens: number;
  readonly ttftMs: number;
  readonly dispatch: Dispatch;
}

async function measure(placement: Placement, dir: string, config: ModelConfig): Promise<{ placement: Placement; upSeconds: number; batch1: PhaseResult; concurrent: PhaseResult }> {
  const stateDir = join(BENCH_DIR, `experts-cluster-${placement}`);
  const upStarted = Date.now();
  await upCommand(['--model', dir, '--workers', String(WORKERS), '--state-dir', stateDir, '--placement', placement, '--timeout-ms', '1800000']);
  const upSeconds = (Date.now() - upStarted) / 1000;
  try {
    const file = readClusterFile(stateDir);
    await stream(file, promptIds(999, config.vocabSize), 4); // warm-up: first-call costs in every process

    let before = await scrapeTotals(file);
    const ones: StreamResult[] = [];
    for (let r = 0; r < BATCH1_RUNS; r++) ones.push(await stream(file, promptIds(r, config.vocabSize), DECODE_TOKENS));
    let after = await scrapeTotals(file);
    const batch1: PhaseResult = {
      tokensPerSecond: median(ones.map(decodeRate)),
      generatedTokens: ones.reduce((n, r) => n + r.tokens, 0),
      ttftMs: median(ones.map((r) => r.ttftMs)),
      dispatch: dispatchBetween(before, after),
    };

    before = after;
    const started = performance.now();
    const many = await Promise.all(Array.from({ length: CONCURRENT }, (_, i) => stream(file, promptIds(100 + i, config.vocabSize), DECODE_TOKENS)));
    const wallSeconds = (performance.now() - started) / 1000;
    after = await scrapeTotals(file);
    const generated = many.reduce((n, r) => n + r.tokens, 0);
    const concurrent: PhaseResult = { tokensPerSecond: generated / wallSeconds, generatedTokens: generated, ttftMs: median(many.map((r) => r.ttftMs)), dispatch: dispatchBetween(before, after) };
    return { placement, upSeconds, batch1, concurrent };
  } finally {
    await downCommand(['--state-dir', stateDir]);
  }
}

function parameterCounts(c: ModelConfig): { total: number; activePerToken: number } {
  const total = stageTensorSpecs(c, 0, c.numLayers).reduce((n, s) => n + elementCount(s.shape), 0);
  const perExpert = 3 * c.hiddenSize * c.intermediateSize;
  return { total, activePerToken: total - c.numLayers * (c.numExperts - c.expertsPerToken) * perExpert };
}

const ms = (seconds: number, count: number): string => (count > 0 ? ((1000 * seconds) / count).toFixed(2) : '—');
const pct = (part: number, whole: number): string => (whole > 0 ? `${((100 * part) / whole).toFixed(0)} %` : '—');

function row(label: string, phase: PhaseResult): string {
  const d = phase.dispatch;
  const callsPerToken = d.roundTrips > 0 ? (d.roundTrips / phase.generatedTokens).toFixed(1) : '—';
  const remoteShare = d.localCalls + d.remoteCalls > 0 ? pct(d.remoteCalls, d.localCalls + d.remoteCalls) : '—';
  const overheadSeconds = d.roundTripSeconds - d.holderSeconds;
  return `| ${label} | ${formatRate(phase.tokensPerSecond, 2)} | ${phase.ttftMs.toFixed(0)} | ${remoteShare} | ${callsPerToken} | ${ms(d.roundTripSeconds, d.roundTrips)} | ${ms(d.holderSeconds, d.holderCalls)} | ${ms(overheadSeconds, d.roundTrips)} | ${d.roundTrips > 0 ? pct(d.roundTripSeconds, d.forwardSeconds) : '—'} | ${d.roundTrips > 0 ? pct(overheadSeconds, d.forwardSeconds) : '—'} |`;
}

async function main(): Promise<void> {
  const dir = await ensureBenchModel('mixtral-1b-bf16', MIXTRAL_1B);
  const config = (await Checkpoint.open(dir)).config;
  const params = parameterCounts(config);
  console.error(
    `model: ${(params.total / 1e9).toFixed(3)} B parameters (${(params.activePerToken / 1e9).toFixed(3)} B active per token): ` +
      `hidden ${config.hiddenSize}, ${config.numLayers} layers, ${config.numExperts} experts of intermediate ${config.intermediateSize}, top-${config.expertsPerToken}`,
  );
  const results = [];
  for (const placement of PLACEMENTS) {
    console.error(`bora up --placement ${placement} ...`);
    results.push(await measure(placement, dir, config));
  }
  writeFileSync(join(BENCH_DIR, 'experts.json'), JSON.stringify({ model: { dir, parameters: params, config }, workers: WORKERS, results }, null, 2));
  console.log(`${(params.total / 1e9).toFixed(2)} B-parameter Mixtral shape (${(params.activePerToken / 1e9).toFixed(2)} B active per token), ${WORKERS} workers with 1 onnxruntime thread each, prompts of ${PROMPT_TOKENS} tokens, ${DECODE_TOKENS} tokens generated per stream.

| placement, workload | tok/s | TTFT ms (median) | expert calls remote | RunExperts per token | round trip ms | holder time ms | overhead ms per round trip | round trips / stage time | overhead / stage time |
|---|---|---|---|---|---|---|---|---|---|
${results.flatMap((r) => [row(`${r.placement}, batch 1 (decode)`, r.batch1), row(`${r.placement}, ${CONCURRENT} streams (aggregate)`, r.concurrent)]).join('\n')}

Cluster start (bora up until the plan serves): ${results.map((r) => `${r.placement} ${r.upSeconds.toFixed(0)} s`).join(', ')}.
"overhead" = round trip - the holder's own time for the call (engine queueing + compute): serialisation, gRPC and the two event loops.`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
