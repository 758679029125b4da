/**
 * npm run bench:cluster — the ~1B Mistral-shaped checkpoint on a local cluster of 3 workers
 * (bora up): batch-1 decode tokens/s against the in-process engine (both loaded at once and
 * measured in alternating rounds), aggregate tokens/s of 16 concurrent streams against batch 1
 * (the decode rate like batch 1's, and end to end with the prompts' prefill),
 * and time to first token; then what security costs: a secure cluster (TLS on every link, API
 * keys, admission) against a plaintext one, both up at once, at batch 1 and with 16 streams in
 * alternating rounds. `--only security` runs that part alone. Then the prefix cache: time to
 * first token at turn 10 of a 10-turn chat on a cluster with --prefix-cache-bytes against one
 * without (both up at once, each turn run on both, the order alternating), and the prefix-cache
 * hit rate of 16 streams sharing a 512-token system prompt (from the first stage's metrics).
 * `--only prefix` runs that part alone.
 *
 * `--weights q4_0` (or q8_0, q4_k_m, bf16, f16) runs the first part on the checkpoint written as a
 * GGUF file of that type (the cluster and the in-process engine both load the file), and
 * `--only decode` runs the first part alone. The first part also sets the 16-stream aggregate
 * decode against the compute bound: the GEMM peak measured in the same run with the engine's
 * kernel at the weights' type (bench/gemm-peak.ts) over the model's FLOPs per token.
 * Prints markdown tables and writes .bench/cluster.json (.bench/cluster-security.json,
 * .bench/cluster-prefix.json).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clusterAccess, readClusterFile, type ClusterFile } from '../cli/cluster';
import { scrapeMetrics } from '../common/metrics/exposition';
import { generateRemote } from '../cli/inference-client';
import { openLocalGenerator } from '../common/generation/local-generator';
import type { GenerationEvent, GenerationRequest } from '../common/generation/request';
import type { MakeModelOptions } from '../common/model/make-model';
import { Checkpoint } from '../common/model/checkpoint';
import { isGgufWeightType, type GgufWeightType } from '../common/model/gguf/gguf-writer';
import { openModel } from '../common/model/open-model';
import { BENCH_DIR, MISTRAL_1B, ensureBenchGguf, ensureBenchModel } from './bench-model';
import { flopsPerToken, measureGemmPeak } from './gemm-peak';
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
async function benchCluster(
  dir: string,
  mode: '--secure' | '--insecure',
  extra: readonly string[] = [],
): Promise<{ file: ClusterFile; run(seed: number): Promise<Run>; runIds(ids: readonly number[], maxTokens: number): Promise<Run & { ids: number[] }>; down(): void }> {
  const stateDir = mkdtempSync(join(tmpdir(), 'bora-bench-'));
  const bora = (args: string[]): void => {
    execFileSync(process.execPath, [BORA, ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
  };
  bora(['up', '--model', dir, '--workers', String(WORKERS), '--state-dir', stateDir, '--threads', THREADS, '--timeout-ms', '600000', mode, ...extra]);
  const file = readClusterFile(stateDir);
  const access = clusterAccess(file, 'client');
  return {
    file,
    run: async (seed) => {
      let run: Run | undefined;
      await generateRemote(file.coordinator, request(seed), collect((r) => (run = r)), 600_000, access);
      return run!;
    },
    runIds: async (ids, maxTokens) => {
      let run: Run | undefined;
      const tokens: number[] = [];
      const req: GenerationRequest = { prompt: { kind: 'ids', ids: [...ids] }, maxTokens, sampling: { kind: 'greedy' }, stop: [], ignoreEos: true, returnFirstLogits: false };
      await generateRemote(file.coordinator, req, (e) => {
        if (e.type === 'token') tokens.push(e.tokenId);
        collect((r) => (run = r))(e);
      }, 600_000, access);
      return { ...run!, ids: tokens };
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

const CHAT_TURNS = 10;
const CHAT_USER_TOKENS = 24;
const CHAT_ANSWER_TOKENS = 16;
const SYSTEM_TOKENS = 512;
const PREFIX_CACHE_BYTES = String(2 * 1024 * 1024 * 1024);

/**
 * The prefix-cache part runs on a smaller Mistral shape (~60M parameters): on this shared 2-core
 * machine a 512-token prefill of the 1B model through 3 stages can outlast the coordinator's 30 s
 * step timeout when other work runs, which turns a benchmark into a loop of re-plans.
 * BORA_BENCH_PREFIX_MODEL=1b runs it on the 1B model instead.
 */
const MISTRAL_SMALL: Omit<MakeModelOptions, 'outDir'> = Object.freeze({ ...MISTRAL_1B, hiddenSize: 512, numLayers: 8, numHeads: 8, numKvHeads: 4, intermediateSize: 1536, seed: 3 });

/** `count` token ids (BOS first) of stream/turn `seed`, the same on every call. */
function tokenRun(count: number, seed: number, bos = false): number[] {
  return Array.from({ length: count }, (_, i) => (bos && i === 0 ? 1 : 100 + ((seed * 7919 + i * 104729) % 31000)));
}

/** The first stage's prefix-cache token counters, summed over the workers serving stage 0. */
async function stage0PrefixTokens(file: ClusterFile): Promise<{ hit: number; miss: number }> {
  let hit = 0;
  let miss = 0;
  for (const w of file.workers) {
    if (w.metrics === undefined) continue;
    for (const s of await scrapeMetrics(w.metrics)) {
      if (s.labels.stage !== '0') continue;
      if (s.name === 'bora_prefix_cache_hit_tokens_total') hit += s.value;
      if (s.name === 'bora_prefix_cache_miss_tokens_total') miss += s.value;
    }
  }
  return { hit, miss };
}

/**
 * Prefix cache on / off, paired: a 10-turn chat (a 512-token system prompt, then user turns of
 * 24 tokens and 16-token answers; each turn is a new request carrying the whole conversation),
 * every turn run on both clusters, the order alternating; then 16 streams sharing one 512-token
 * system prompt (each with its own 24-token question), sent at once to the cached cluster.
 */
async function measurePrefixCache(dir: string): Promise<void> {
  const cached = await benchCluster(dir, '--insecure', ['--prefix-cache-bytes', PREFIX_CACHE_BYTES]);
  const plain = await benchCluster(dir, '--insecure');
  try {
    await cached.run(99); // warm-up both
    await plain.run(99);
    const conversation = tokenRun(SYSTEM_TOKENS, 7, true);
    const turns: { promptTokens: number; cachedTtftMs: number; plainTtftMs: number }[] = [];
    for (let turn = 0; turn < CHAT_TURNS; turn++) {
      conversation.push(...tokenRun(CHAT_USER_TOKENS, 1000 + turn));
      const cachedFirst = turn % 2 === 0;
      const a = await (cachedFirst ? cached : plain).runIds(conversation, CHAT_ANSWER_TOKENS);
      const b = await (cachedFirst ? plain : cached).runIds(conversation, CHAT_ANSWER_TOKENS);
      const [c, p] = cachedFirst ? [a, b] : [b, a];
      if (c.ids.join() !== p.ids.join()) throw new Error(`turn ${turn + 1}: the cached cluster answered ${c.ids.join(',')}, the other ${p.ids.join(',')}`);
      turns.push({ promptTokens: conversation.length, cachedTtftMs: c.ttftMs, plainTtftMs: p.ttftMs });
      conversation.push(...c.ids);
    }
    await new Promise((r) => setTimeout(r, 1500)); // the workers publish their metrics once a second
    const before = await stage0PrefixTokens(cached.file);
    const system = tokenRun(SYSTEM_TOKENS, 11, true);
    const started = performance.now();
    const streams = await Promise.all(Array.from({ length: STREAMS }, (_, i) => cached.runIds([...system, ...tokenRun(CHAT_USER_TOKENS, 2000 + i)], 8)));
    const streamsWallMs = performance.now() - started;
    await new Promise((r) => setTimeout(r, 1500));
    const after = await stage0PrefixTokens(cached.file);
    const hit = after.hit - before.hit;
    const miss = after.miss - before.miss;
    const last = turns[turns.length - 1];
    const result = {
      workers: WORKERS,
      turns,
      turn10: { ...last, cachedOverPlain: last.cachedTtftMs / last.plainTtftMs },
      sharedSystemPrompt: { streams: STREAMS, systemTokens: SYSTEM_TOKENS, hitTokens: hit, missTokens: miss, hitRate: hit / (hit + miss), wallMs: streamsWallMs, ttftP50Ms: median(streams.map((s) => s.ttftMs)) },
    };
    writeFileSync(join(BENCH_DIR, 'cluster-prefix.json'), JSON.stringify(result, null, 2));
    console.log(`| prefix cache (${WORKERS}-worker clusters, on / off, each turn run on both) | cache on | cache off | on / off |
|---|---|---|---|
${turns.map((t, i) => `| turn ${i + 1} (${t.promptTokens}-token prompt), time to first token | ${t.cachedTtftMs.toFixed(0)} ms | ${t.plainTtftMs.toFixed(0)} ms | ${i === turns.length - 1 ? '**' : ''}${(t.cachedTtftMs / t.plainTtftMs).toFixed(2)}x${i === turns.length - 1 ? '**' : ''} |`).join('\n')}

| ${STREAMS} streams sharing a ${SYSTEM_TOKENS}-token system prompt (cache on) | value |
|---|---|
| first stage's prefix-cache hit rate (tokens of full blocks looked up) | **${(result.sharedSystemPrompt.hitRate * 100).toFixed(1)}%** (${hit} hit, ${miss} missed) |
| time to first token p50 / wall time of the burst | ${result.sharedSystemPrompt.ttftP50Ms.toFixed(0)} ms / ${streamsWallMs.toFixed(0)} ms |`);
  } finally {
    cached.down();
    plain.down();
  }
}

async function main(): Promise<void> {
  const dir = await ensureBenchModel('mistral-1b-bf16', MISTRAL_1B);
  const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : undefined;
  if (only === 'security') {
    await measureSecurityCost(dir);
    return;
  }
  const prefixModel = async (): Promise<string> => (process.env.BORA_BENCH_PREFIX_MODEL === '1b' ? dir : ensureBenchModel('mistral-small-bf16', MISTRAL_SMALL));
  if (only === 'prefix') {
    await measurePrefixCache(await prefixModel());
    return;
  }
  const weightsFlag = process.argv.includes('--weights') ? process.argv[process.argv.indexOf('--weights') + 1].toUpperCase() : 'BF16';
  if (!isGgufWeightType(weightsFlag)) throw new Error(`--weights must be one of bf16, f16, q8_0, q4_0, q4_k_m; got ${weightsFlag}`);
  const weights: GgufWeightType = weightsFlag;
  // bf16 runs the safetensors checkpoint as before; any other type its GGUF file.
  const modelPath = weights === 'BF16' ? dir : await ensureBenchGguf(await Checkpoint.open(dir), weights);
  const m = await measure(modelPath);
  const config = (await openModel(modelPath)).config;
  // The kernel the bulk of the weights run on: Q4_K_M's matrices are mostly Q4_K.
  const gemm = measureGemmPeak(weights === 'Q4_K_M' ? 'Q4_K' : weights, Number(THREADS));
  const meanContext = PROMPT_TOKENS + NEW_TOKENS / 2;
  const computeBound = gemm.flopsPerSecond / flopsPerToken(config, meanContext);
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
    weights,
    model: modelPath,
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
    gemmPeak: gemm,
    flopsPerToken: flopsPerToken(config, meanContext),
    computeBoundTokensPerSecond: computeBound,
    aggregateDecodeOverComputeBound: aggregateDecode / computeBound,
    runs: m,
  };
  writeFileSync(join(BENCH_DIR, weights === 'BF16' ? 'cluster.json' : `cluster-${weights.toLowerCase()}.json`), JSON.stringify(result, null, 2));
  console.log(`weights ${weights} (${modelPath})
| metric | value |
|---|---|
| batch-1 decode, in process (median of ${ROUNDS}) | ${formatRate(localDecode, 2)} tok/s |
| batch-1 decode, ${WORKERS}-worker cluster (median of ${ROUNDS}) | ${formatRate(clusterDecode, 2)} tok/s |
| cluster / in-process, median of paired rounds | **${result.clusterOverInProcess.toFixed(2)}x** (rounds: ${ratios.map((r) => r.toFixed(2)).join(', ')}) |
| ${STREAMS} concurrent streams, aggregate decode rate (sum of the streams' rates after their first token, as batch 1) | ${formatRate(aggregateDecode, 1)} tok/s (**${result.aggregateDecodeOverBatch1.toFixed(1)}x** batch 1) |
| ${STREAMS} concurrent streams, end to end (the ${STREAMS} prompts' prefill included) | ${formatRate(aggregate, 1)} tok/s (${result.aggregateEndToEndOverBatch1.toFixed(1)}x batch 1) |
| time to first token, ${STREAMS} streams, p50 / p95 | ${result.ttftMs.p50.toFixed(0)} / ${result.ttftMs.p95.toFixed(0)} ms |
| time to first token, batch 1, p50 | ${result.ttftMs.batch1P50.toFixed(0)} ms |
| GEMM peak, ${gemm.dtype}, ${gemm.threads} threads (best of batches ${Object.keys(gemm.byBatch).join(', ')}: ${gemm.bestBatch}) | ${(gemm.flopsPerSecond / 1e9).toFixed(1)} GFLOP/s |
| compute bound: peak / ${(result.flopsPerToken / 1e9).toFixed(2)} GFLOP per token (context ${meanContext}) | ${formatRate(computeBound, 1)} tok/s |
| ${STREAMS}-stream aggregate decode / compute bound | **${result.aggregateDecodeOverComputeBound.toFixed(2)}x** |`);
  if (only === 'decode') return;
  await measureSecurityCost(dir);
  await measurePrefixCache(await prefixModel());
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
