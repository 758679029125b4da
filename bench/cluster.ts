/**
 * npm run bench:cluster — the ~1B Mistral-shaped checkpoint on a local cluster of 3 workers
 * (bora up): batch-1 decode tokens/s against the in-process engine measured in the same run,
 * aggregate tokens/s of 16 concurrent streams against batch 1, and time to first token.
 * Prints a markdown table and writes .bench/cluster.json.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readClusterFile } from '../cli/cluster';
import { generateRemote } from '../cli/inference-client';
import { openLocalGenerator } from '../common/generation/local-generator';
import type { GenerationEvent, GenerationRequest } from '../common/generation/request';
import { BENCH_DIR, MISTRAL_1B, ensureBenchModel } from './bench-model';
import { formatRate, median, percentile } from './stats';

const PROMPT_TOKENS = 16;
const NEW_TOKENS = 32;
const STREAMS = 16;
const WORKERS = 3;
/** onnxruntime threads per worker (BORA_BENCH_THREADS). */
const THREADS = process.env.BORA_BENCH_THREADS ?? '2';
const BORA = join(__dirname, '..', 'cli', 'bora.js');

interface Run {
  readonly ttftMs: number;
  readonly totalMs: number;
  readonly tokens: number;
}

function request(seed: number): GenerationRequest {
  const ids = [1, ...Array.from({ length: PROMPT_TOKENS - 1 }, (_, i) => 100 + ((seed * 7919 + i * 104729) % 31000))];
  return { prompt: { kind: 'ids', ids }, maxTokens: NEW_TOKENS, sampling: { kind: 'greedy' }, stop: [], ignoreEos: true, returnFirstLogits: false };
}

function collect(onFinish: (run: Run) => void): (e: GenerationEvent) => void {
  return (e) => {
    if (e.type === 'finish') onFinish({ ttftMs: e.timeToFirstTokenMs, totalMs: e.totalMs, tokens: e.generatedTokens });
  };
}

/** Decode rate of one request: tokens after the first over the time after the first. */
const decodeRate = (r: Run): number => (r.tokens - 1) / ((r.totalMs - r.ttftMs) / 1000);

async function inProcess(dir: string): Promise<Run[]> {
  const local = await openLocalGenerator(dir);
  const runs: Run[] = [];
  for (let i = 0; i < 3; i++) await local.generator.start(request(i), collect((r) => runs.push(r))).done;
  await local.close();
  return runs;
}

async function onCluster(dir: string): Promise<{ single: Run[]; concurrent: Run[]; wallMs: number }> {
  const stateDir = mkdtempSync(join(tmpdir(), 'bora-bench-'));
  const bora = (args: string[]): void => {
    execFileSync(process.execPath, [BORA, ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
  };
  bora(['up', '--model', dir, '--workers', String(WORKERS), '--state-dir', stateDir, '--threads', THREADS, '--timeout-ms', '600000']);
  try {
    const { coordinator } = readClusterFile(stateDir);
    await generateRemote(coordinator, request(99), () => undefined, 600_000); // warm-up
    const single: Run[] = [];
    for (let i = 0; i < 3; i++) await generateRemote(coordinator, request(i), collect((r) => single.push(r)), 600_000);
    const concurrent: Run[] = [];
    const started = performance.now();
    await Promise.all(Array.from({ length: STREAMS }, (_, i) => generateRemote(coordinator, request(100 + i), collect((r) => concurrent.push(r)), 600_000)));
    return { single, concurrent, wallMs: performance.now() - started };
  } finally {
    bora(['down', '--state-dir', stateDir]);
    rmSync(stateDir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const dir = await ensureBenchModel('mistral-1b-bf16', MISTRAL_1B);
  const local = await inProcess(dir);
  const cluster = await onCluster(dir);
  const localDecode = median(local.map(decodeRate));
  const clusterDecode = median(cluster.single.map(decodeRate));
  const aggregate = cluster.concurrent.reduce((n, r) => n + r.tokens, 0) / (cluster.wallMs / 1000);
  const ttfts = cluster.concurrent.map((r) => r.ttftMs);
  const result = {
    workers: WORKERS,
    promptTokens: PROMPT_TOKENS,
    newTokens: NEW_TOKENS,
    inProcessDecodeTokensPerSecond: localDecode,
    clusterDecodeTokensPerSecond: clusterDecode,
    clusterOverInProcess: clusterDecode / localDecode,
    concurrentStreams: STREAMS,
    aggregateTokensPerSecond: aggregate,
    aggregateOverBatch1: aggregate / clusterDecode,
    ttftMs: { p50: percentile(ttfts, 50), p95: percentile(ttfts, 95), batch1P50: median(cluster.single.map((r) => r.ttftMs)) },
    runs: { local, single: cluster.single, concurrent: cluster.concurrent, wallMs: cluster.wallMs },
  };
  writeFileSync(join(BENCH_DIR, 'cluster.json'), JSON.stringify(result, null, 2));
  console.log(`| metric | value |
|---|---|
| batch-1 decode, in process | ${formatRate(localDecode, 2)} tok/s |
| batch-1 decode, ${WORKERS}-worker cluster | ${formatRate(clusterDecode, 2)} tok/s (${result.clusterOverInProcess.toFixed(2)}x in-process) |
| ${STREAMS} concurrent streams, aggregate | ${formatRate(aggregate, 1)} tok/s (${result.aggregateOverBatch1.toFixed(1)}x batch 1) |
| time to first token, ${STREAMS} streams, p50 / p95 | ${result.ttftMs.p50.toFixed(0)} / ${result.ttftMs.p95.toFixed(0)} ms |
| time to first token, batch 1, p50 | ${result.ttftMs.batch1P50.toFixed(0)} ms |`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
