/**
 * npm run bench:cluster — the ~1B Mistral-shaped checkpoint on a local cluster of 3 workers
 * (bora up): batch-1 decode tokens/s against the in-process engine (both loaded at once and
 * measured in alternating rounds), aggregate tokens/s of 16 concurrent streams against batch 1
 * (the decode rate like batch 1's, and end to end with the prompts' prefill),
 * and time to first token; then what security costs: a secure cluster (TLS on every link, API
 * keys, admission) against a plaintext one, both up at once, at batch 1 and with 16 streams in
 * alternating rounds. `--only security` runs that part alone.
 * Prints markdown tables and writes .bench/cluster.json (and .bench/cluster-security.json).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clusterAccess, readClusterFile } from '../cli/cluster';
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

/** Paired rounds: one in-process request, then one through the cluster (order alternating). */
const ROUNDS = 5;

interface Measured {
  readonly pairs: { local: Run; cluster: Run }[];
  readonly concurrent: Run[];
  readonly wallMs: number;
}

/**
 * The in-process engine and the cluster are both loaded at once and measured in alternating
 * rounds, so a slow minute of this shared machine hits both sides of a pair alike; the ratio is
 * the median of the per-round ratios.
 */
async function measure(dir: string): Promise<Measured> {
  const stateDir = mkdtempSync(join(tmpdir(), 'bora-bench-'));
  const bora = (args: string[]): void => {
    execFileSync(process.execPath, [BORA, ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
  };
  bora(['up', '--model', dir, '--workers', String(WORKERS), '--state-dir', stateDir, '--threads', THREADS, '--timeout-ms', '600000']);
  const local = await openLocalGenerator(dir);
  try {
    const file = readClusterFile(stateDir);
    const { coordinator } = file;
    const access = clusterAccess(file, 'client');
    const runLocal = async (seed: number): Promise<Run> => {
      let run: Run | undefined;
      await local.generator.start(request(seed), collect((r) => (run = r))).done;
      return run!;
    };
    const runCluster = async (seed: number): Promise<Run> => {
      let run: Run | undefined;
      await generateRemote(coordinator, request(seed), collect((r) => (run = r)), 600_000, access);
      return run!;
    };
    await runLocal(99); // warm-up both sides
    await runCluster(99);
    const pairs: { local: Run; cluster: Run }[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      if (i % 2 === 0) {
        const l = await runLocal(i);
        pairs.push({ local: l, cluster: await runCluster(i) });
      } else {
        const c = await runCluster(i);
        pairs.push({ local: await runLocal(i), cluster: c });
      }
    }
    const concurrent: Run[] = [];
    const started = performance.now();
    await Promise.all(Array.from({ length: STREAMS }, (_, i) => generateRemote(coordinator, request(100 + i), collect((r) => concurrent.push(r)), 600_000, access)));
    return { pairs, concurrent, wallMs: performance.now() - started };
  } finally {
    await local.close();
    bora(['down', '--state-dir', stateDir]);
    rmSync(stateDir, { recursive: true, force: true });
  }
}

/** Rounds of the secure / plaintext comparison: batch-1 requests, and 16-stream bursts. */
const SECURITY_ROUNDS = 6;
const SECURITY_BURSTS = 4;

/** A cluster of the bench model, up until `down()`. */
async function benchCluster(dir: string, mode: '--secure' | '--insecure'): Promise<{ run(seed: number): Promise<Run>; down(): void }> {
  const stateDir = mkdtempSync(join(tmpdir(), 'bora-bench-'));
  const bora = (args: string[]): void => {
    execFileSync(process.execPath, [BORA, ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
  };
  bora(['up', '--model', dir, '--workers', String(WORKERS), '--state-dir', stateDir, '--threads', THREADS, '--timeout-ms', '600000', mode]);
  const file = readClusterFile(stateDir);
  const access = clusterAccess(file, 'client');
  return {
    run: async (seed) => {
      let run: Run | undefined;
      await generateRemote(file.coordinator, request(seed), collect((r) => (run = r)), 600_000, access);
      return run!;
    },
    down: () => {
      bora(['down', '--state-dir', stateDir]);
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

/**
 * Secure over plaintext, paired: both clusters are up at once (idle while the other runs), and
 * each round runs one then the other, the order alternating, so a slow minute of this shared
 * machine hits both sides of a pair alike. Ratios are medians of the per-round ratios.
 */
async function measureSecurityCost(dir: string): Promise<void> {
  const secure = await benchCluster(dir, '--secure');
  const plain = await benchCluster(dir, '--insecure');
  try {
    await secure.run(99); // warm-up both
    await plain.run(99);
    const batch1: { secure: Run; plain: Run }[] = [];
    for (let i = 0; i < SECURITY_ROUNDS; i++) {
      const first = i % 2 === 0 ? secure : plain;
      const a = await first.run(i);
      const b = await (first === secure ? plain : secure).run(i);
      batch1.push(first === secure ? { secure: a, plain: b } : { secure: b, plain: a });
    }
    const burst = async (cluster: typeof secure, round: number): Promise<number> => {
      const runs = await Promise.all(Array.from({ length: STREAMS }, (_, i) => cluster.run(200 + round * STREAMS + i)));
      return runs.reduce((n, r) => n + decodeRate(r), 0);
    };
    const bursts: { secure: number; plain: number }[] = [];
    for (let i = 0; i < SECURITY_BURSTS; i++) {
      if (i % 2 === 0) {
        const s = await burst(secure, i);
        bursts.push({ secure: s, plain: await burst(plain, i) });
      } else {
        const p = await burst(plain, i);
        bursts.push({ secure: await burst(secure, i), plain: p });
      }
    }
    const batch1Ratios = batch1.map((p) => decodeRate(p.secure) / decodeRate(p.plain));
    const burstRatios = bursts.map((b) => b.secure / b.plain);
    const result = {
      workers: WORKERS,
      batch1: { secureTokensPerSecond: median(batch1.map((p) => decodeRate(p.secure))), plainTokensPerSecond: median(batch1.map((p) => decodeRate(p.plain))), secureOverPlain: median(batch1Ratios), perRound: batch1Ratios },
      streams16: { secureTokensPerSecond: median(bursts.map((b) => b.secure)), plainTokensPerSecond: median(bursts.map((b) => b.plain)), secureOverPlain: median(burstRatios), perRound: burstRatios },
    };
    writeFileSync(join(BENCH_DIR, 'cluster-security.json'), JSON.stringify(result, null, 2));
    console.log(`| secure / plaintext (${WORKERS}-worker clusters, paired rounds) | secure | plaintext | secure / plaintext |
|---|---|---|---|
| batch-1 decode (median of ${SECURITY_ROUNDS}) | ${formatRate(result.batch1.secureTokensPerSecond, 2)} tok/s | ${formatRate(result.batch1.plainTokensPerSecond, 2)} tok/s | **${result.batch1.secureOverPlain.toFixed(3)}x** (rounds: ${batch1Ratios.map((r) => r.toFixed(2)).join(', ')}) |
| ${STREAMS} streams, aggregate decode (median of ${SECURITY_BURSTS}) | ${formatRate(result.streams16.secureTokensPerSecond, 1)} tok/s | ${formatRate(result.streams16.plainTokensPerSecond, 1)} tok/s | **${result.streams16.secureOverPlain.toFixed(3)}x** (rounds: ${burstRatios.map((r) => r.toFixed(2)).join(', ')}) |`);
  } finally {
    secure.down();
    plain.down();
  }
}

async function main(): Promise<void> {
  const dir = await ensureBenchModel('mistral-1b-bf16', MISTRAL_1B);
  if (process.argv.includes('--only') && process.argv[process.argv.indexOf('--only') + 1] === 'security') {
    await measureSecurityCost(dir);
    return;
  }
  const m = await measure(dir);
  const localDecode = median(m.pairs.map((p) => decodeRate(p.local)));
  const clusterDecode = median(m.pairs.map((p) => decodeRate(p.cluster)));
  const ratios = m.pairs.map((p) => decodeRate(p.cluster) / decodeRate(p.local));
  // Like for like with batch 1's decode rate: the streams' decode rates (tokens after the first
  // over the time after the first) summed, as they decode side by side.
  const aggregateDecode = m.concurrent.reduce((n, r) => n + decodeRate(r), 0);
  // End to end: every token over the wall time from sending the requests, prefill included.
  const aggregate = m.concurrent.reduce((n, r) => n + r.tokens, 0) / (m.wallMs / 1000);
  const ttfts = m.concurrent.map((r) => r.ttftMs);
  const result = {
    workers: WORKERS,
    promptTokens: PROMPT_TOKENS,
    newTokens: NEW_TOKENS,
    rounds: ROUNDS,
    inProcessDecodeTokensPerSecond: localDecode,
    clusterDecodeTokensPerSecond: clusterDecode,
    clusterOverInProcess: median(ratios),
    clusterOverInProcessPerRound: ratios,
    concurrentStreams: STREAMS,
    aggregateDecodeTokensPerSecond: aggregateDecode,
    aggregateDecodeOverBatch1: aggregateDecode / clusterDecode,
    aggregateEndToEndTokensPerSecond: aggregate,
    aggregateEndToEndOverBatch1: aggregate / clusterDecode,
    ttftMs: { p50: percentile(ttfts, 50), p95: percentile(ttfts, 95), batch1P50: median(m.pairs.map((p) => p.cluster.ttftMs)) },
    runs: m,
  };
  writeFileSync(join(BENCH_DIR, 'cluster.json'), JSON.stringify(result, null, 2));
  console.log(`| metric | value |
|---|---|
| batch-1 decode, in process (median of ${ROUNDS}) | ${formatRate(localDecode, 2)} tok/s |
| batch-1 decode, ${WORKERS}-worker cluster (median of ${ROUNDS}) | ${formatRate(clusterDecode, 2)} tok/s |
| cluster / in-process, median of paired rounds | **${result.clusterOverInProcess.toFixed(2)}x** (rounds: ${ratios.map((r) => r.toFixed(2)).join(', ')}) |
| ${STREAMS} concurrent streams, aggregate decode rate (sum of the streams' rates after their first token, as batch 1) | ${formatRate(aggregateDecode, 1)} tok/s (**${result.aggregateDecodeOverBatch1.toFixed(1)}x** batch 1) |
| ${STREAMS} concurrent streams, end to end (the ${STREAMS} prompts' prefill included) | ${formatRate(aggregate, 1)} tok/s (${result.aggregateEndToEndOverBatch1.toFixed(1)}x batch 1) |
| time to first token, ${STREAMS} streams, p50 / p95 | ${result.ttftMs.p50.toFixed(0)} / ${result.ttftMs.p95.toFixed(0)} ms |
| time to first token, batch 1, p50 | ${result.ttftMs.batch1P50.toFixed(0)} ms |`);
  await measureSecurityCost(dir);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
