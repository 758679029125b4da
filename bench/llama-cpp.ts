/**
 * npm run bench:llama — Bora against llama.cpp (through node-llama-cpp) on the same GGUF file,
 * per weight type, paired in one run. The checkpoint bench:engine uses is written as GGUF by
 * common/model/gguf/gguf-writer.ts (the writer of `bora quantize`; cached as
 * .bench/gguf/<model>-<type>.gguf, rewritten when the checkpoint is newer); Bora loads that file
 * (--model FILE.gguf's path) and llama.cpp loads the same file.
 *
 * Per type (BF16, F16, Q8_0, Q4_0, Q4_K_M by default), with both engines loaded:
 * - prefill of a 128-token prompt and batch-1 greedy decode (median time per token over 32
 *   steps), in PASSES passes, each llama.cpp's then Bora's on the same prompt; ratios per pass;
 * - decode at batch 16, aggregate: 16 sequences of a 16-token prompt decoding 16 tokens each
 *   (llama.cpp: 16 sequences of one context evaluated concurrently, which node-llama-cpp batches
 *   into one decode call; Bora: one forward call of 16 slices per step);
 * - a 2048-token prefill (BORA_LLAMA_LONG_PASSES, default 1; 0 skips it);
 * - agreement: how many of the first 32 greedy tokens of pass 0 are the same, and the step-0
 *   logit cosine (node-llama-cpp gives no raw logits, only the full softmax: bench/node-llama-cpp.ts
 *   compares centred log probabilities with Bora's centred logits);
 * - load time and peak RSS: each engine loads the file alone in a fresh child process, runs one
 *   token (so llama.cpp's mapped pages are counted), and reports its load time and VmHWM; peak
 *   RSS is compared with the file size.
 * CPU only, 2 threads each. Prints markdown tables and writes .bench/llama-cpp.json.
 *
 * node-llama-cpp is not a dependency of Bora: install it outside the repository (see
 * INSTALL_HINT); without it the benchmark says so and exits 0. The process re-runs itself with
 * UV_THREADPOOL_SIZE=1 unless that is set: libuv's default pool of 4 threads beside llama.cpp's
 * 2 cost 12-15 ms per token on 2 cores (RUNTIME-FACTS.md).
 *
 * Environment: BORA_LLAMA_MODEL (checkpoint dir; default the engine benchmark's 1B model),
 * BORA_LLAMA_TYPES (default BF16,F16,Q8_0,Q4_0,Q4_K_M; also F32), NODE_LLAMA_CPP_DIR (default
 * /tmp/llama/node_modules/node-llama-cpp), BORA_LLAMA_PASSES (default 3), BORA_LLAMA_MMAP=0 to
 * have llama.cpp read weights into memory instead of its default mmap.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { StageEngine } from '../common/engine/stage-engine';
import { sequenceId } from '../common/ids';
import { Checkpoint } from '../common/model/checkpoint';
import { GgufCheckpoint } from '../common/model/gguf/gguf-checkpoint';
import { BENCH_DIR, MISTRAL_1B, ensureBenchGguf, ensureBenchModel } from './bench-model';
import { isGgufWeightType, type GgufWeightType } from '../common/model/gguf/gguf-writer';
import { centredLogitCosine, llamaGreedy, loadNodeLlamaCpp, tokenAgreement, type NlcContext, type NlcLlama, type NlcModel, type NlcSequence, type Token } from './node-llama-cpp';
import { formatRate, median } from './stats';

const THREADS = 2;
const PREFILL_TOKENS = 128;
const DECODE_STEPS = 32;
const PASSES = Number(process.env.BORA_LLAMA_PASSES ?? 3);
const CONTEXT_TOKENS = 256;
/** The long prompt of the paired prefill section (longPrefill). */
const LONG_PREFILL_TOKENS = 2048;
const BATCH = 16;
const BATCH_PROMPT_TOKENS = 16;
const BATCH_NEW_TOKENS = 16;
const AGREEMENT_TOKENS = 32;

const DEFAULT_NLC_DIR = '/tmp/llama/node_modules/node-llama-cpp';
const INSTALL_HINT = `node-llama-cpp is not installed at the path NODE_LLAMA_CPP_DIR names. Install it outside the repository:
  mkdir -p /tmp/llama && cd /tmp/llama && npm init -y && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm install node-llama-cpp@3.21.1
(its prebuilt CPU binary, @node-llama-cpp/linux-x64, comes with it), then rerun npm run bench:llama.`;

// ---- Measurement -------------------------------------------------------------------------

async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const start = process.hrtime.bigint();
  const value = await fn();
  return { value, ms: Number(process.hrtime.bigint() - start) / 1e6 };
}

/** Deterministic prompt ids, skipping the special tokens 0-2. */
function promptIds(seed: number, length: number, vocab: number): Token[] {
  return Array.from({ length }, (_, i) => 3 + ((seed * 7919 + i * 104729) % (vocab - 3)));
}

const argmaxOf = (logits: Float32Array, row = 0, vocab = logits.length): Token => {
  let best = 0;
  for (let i = 1; i < vocab; i++) if (logits[row * vocab + i] > logits[row * vocab + best]) best = i;
  return best;
};

interface PassFigures {
  readonly prefillTokensPerSecond: number;
  readonly decodeTokensPerSecond: number;
  /** Greedy tokens: the one after the prompt, then one per decode step. */
  readonly tokens: Token[];
}

/** llama.cpp: a fresh 128-token prompt, then DECODE_STEPS greedy steps, each timed. */
async function llamaPass(sequence: NlcSequence, seed: number, vocab: number): Promise<PassFigures> {
  await sequence.clearHistory();
  const generator = sequence.evaluate(promptIds(seed, PREFILL_TOKENS, vocab), { temperature: 0, yieldEogToken: true });
  const next = async (): Promise<Token> => {
    const step = await generator.next();
    if (step.done === true) throw new Error('node-llama-cpp stopped generating');
    return step.value;
  };
  const prefill = await timed(next);
  const tokens = [prefill.value];
  const decodeMs: number[] = [];
  for (let step = 0; step < DECODE_STEPS; step++) {
    const run = await timed(next);
    tokens.push(run.value);
    decodeMs.push(run.ms);
  }
  await generator.return();
  return { prefillTokensPerSecond: PREFILL_TOKENS / (prefill.ms / 1000), decodeTokensPerSecond: 1000 / median(decodeMs), tokens };
}

/** Bora on the same prompt: one prefill call, then DECODE_STEPS greedy steps; also the step-0 logits. */
async function boraPass(engine: StageEngine, seed: number, vocab: number): Promise<PassFigures & { firstLogits: Float32Array }> {
  const id = sequenceId(`llama-bench-${seed}`);
  const prompt = promptIds(seed, PREFILL_TOKENS, vocab);
  const prefill = await timed(() => engine.forward({ slices: [{ id, startPosition: 0, tokenCount: PREFILL_TOKENS, tokenIds: prompt }] }));
  const firstLogits = prefill.value.logits!;
  const tokens = [argmaxOf(firstLogits)];
  const decodeMs: number[] = [];
  for (let step = 0; step < DECODE_STEPS; step++) {
    const tokenIds = [tokens[tokens.length - 1]];
    const run = await timed(() => engine.forward({ slices: [{ id, startPosition: PREFILL_TOKENS + step, tokenCount: 1, tokenIds }] }));
    tokens.push(argmaxOf(run.value.logits!));
    decodeMs.push(run.ms);
  }
  engine.release(id);
  return { prefillTokensPerSecond: PREFILL_TOKENS / (prefill.ms / 1000), decodeTokensPerSecond: 1000 / median(decodeMs), tokens, firstLogits };
}

/**
 * llama.cpp at batch 16: 16 sequences of one context, each a 16-token prompt then 16 greedy
 * tokens, all evaluated at once (node-llama-cpp batches concurrent sequences into one decode).
 * Aggregate decode: the tokens after each stream's first over the time from the last stream's
 * first token to the end, so that no prompt is inside the window.
 */
async function llamaBatch(model: NlcModel, vocab: number): Promise<number> {
  const context = await model.createContext({ contextSize: BATCH * (BATCH_PROMPT_TOKENS + BATCH_NEW_TOKENS + 8), batchSize: BATCH * BATCH_PROMPT_TOKENS, sequences: BATCH, threads: { ideal: THREADS, min: THREADS } });
  try {
    const sequences = Array.from({ length: BATCH }, () => context.getSequence());
    const firstAt: number[] = [];
    const tokenTimes: number[][] = sequences.map(() => []);
    await Promise.all(
      sequences.map(async (sequence, b) => {
        const generator = sequence.evaluate(promptIds(100 + b, BATCH_PROMPT_TOKENS, vocab), { temperature: 0, yieldEogToken: true });
        for (let i = 0; i <= BATCH_NEW_TOKENS; i++) {
          const step = await generator.next();
          if (step.done === true) throw new Error('node-llama-cpp stopped generating');
          const now = performance.now();
          if (i === 0) firstAt.push(now);
          else tokenTimes[b].push(now);
        }
        await generator.return();
      }),
    );
    const windowStart = Math.max(...firstAt);
    const end = Math.max(...tokenTimes.flat());
    const inWindow = tokenTimes.flat().filter((t) => t > windowStart).length;
    return inWindow / ((end - windowStart) / 1000);
  } finally {
    await context.dispose();
  }
}

/** Bora at batch 16: one prefill call of 16 prompts, then per step one call of 16 one-token slices. */
async function boraBatch(engine: StageEngine, vocab: number): Promise<number> {
  const ids = Array.from({ length: BATCH }, (_, b) => sequenceId(`llama-batch-${b}`));
  let out = await engine.forward({ slices: ids.map((id, b) => ({ id, startPosition: 0, tokenCount: BATCH_PROMPT_TOKENS, tokenIds: promptIds(100 + b, BATCH_PROMPT_TOKENS, vocab) })) });
  const started = performance.now();
  for (let step = 0; step < BATCH_NEW_TOKENS; step++) {
    const slices = ids.map((id, b) => ({ id, startPosition: BATCH_PROMPT_TOKENS + step, tokenCount: 1, tokenIds: [argmaxOf(out.logits!, b, vocab)] }));
    out = await engine.forward({ slices });
  }
  const seconds = (performance.now() - started) / 1000;
  for (const id of ids) engine.release(id);
  return (BATCH * BATCH_NEW_TOKENS) / seconds;
}

/** A 2048-token prefill on each engine, same prompt: ms for llama.cpp (to its first token) and Bora (one call). */
async function longPrefillPass(model: NlcModel, engine: StageEngine, vocab: number, seed: number): Promise<{ llamaMs: number; boraMs: number }> {
  const context = await model.createContext({ contextSize: LONG_PREFILL_TOKENS + 16, batchSize: LONG_PREFILL_TOKENS, sequences: 1, threads: { ideal: THREADS, min: THREADS } });
  try {
    const sequence = context.getSequence();
    const prompt = promptIds(seed, LONG_PREFILL_TOKENS, vocab);
    const generator = sequence.evaluate(prompt, { temperature: 0, yieldEogToken: true });
    const llama = await timed(() => generator.next());
    await generator.return();
    const id = sequenceId(`llama-long-${seed}`);
    const bora = await timed(() => engine.forward({ slices: [{ id, startPosition: 0, tokenCount: prompt.length, tokenIds: prompt }] }));
    engine.release(id);
    return { llamaMs: llama.ms, boraMs: bora.ms };
  } finally {
    await context.dispose();
  }
}

// ---- Load time and peak RSS: one engine, one file, a fresh process -------------------------

interface LoadProbe {
  readonly engine: 'bora' | 'llama';
  readonly loadSeconds: number;
  /** VmRSS before loading (node, the modules, llama.cpp's library). */
  readonly baselineRssBytes: number;
  /** VmHWM after loading and one token. */
  readonly peakRssBytes: number;
}

function procStatusBytes(field: 'VmRSS' | 'VmHWM'): number {
  const line = readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith(`${field}:`));
  return Number(/(\d+)/.exec(line ?? '')?.[1] ?? NaN) * 1024;
}

/** The child's side (`--probe bora|llama FILE`): load, one token, print the figures as JSON. */
async function probeChild(engineName: 'bora' | 'llama', file: string, nlcDir: string, useMmap: boolean): Promise<void> {
  if (engineName === 'bora') {
    const baselineRssBytes = procStatusBytes('VmRSS');
    const load = await timed(async () => {
      const gguf = await GgufCheckpoint.open(file);
      return StageEngine.load(gguf, { start: 0, end: gguf.config.numLayers }, { compute: { threads: THREADS, linear: 'native' } });
    });
    await load.value.forward({ slices: [{ id: sequenceId('probe'), startPosition: 0, tokenCount: 1, tokenIds: [1] }] });
    const probe: LoadProbe = { engine: 'bora', loadSeconds: load.ms / 1000, baselineRssBytes, peakRssBytes: procStatusBytes('VmHWM') };
    console.log(JSON.stringify(probe));
    return;
  }
  const nlc = (await loadNodeLlamaCpp(nlcDir))!;
  const llama = await nlc.module.getLlama({ gpu: false, build: 'never', skipDownload: true, maxThreads: THREADS, logLevel: 'error' });
  const baselineRssBytes = procStatusBytes('VmRSS');
  const load = await timed(() => llama.loadModel({ modelPath: file, gpuLayers: 0, useMmap }));
  const context = await load.value.createContext({ contextSize: CONTEXT_TOKENS, batchSize: PREFILL_TOKENS, sequences: 1, threads: { ideal: THREADS, min: THREADS } });
  await llamaGreedy(context.getSequence(), [1], 1);
  const probe: LoadProbe = { engine: 'llama', loadSeconds: load.ms / 1000, baselineRssBytes, peakRssBytes: procStatusBytes('VmHWM') };
  console.log(JSON.stringify(probe));
}

function runProbe(engineName: 'bora' | 'llama', file: string): LoadProbe {
  const child = spawnSync(process.execPath, [...process.execArgv, process.argv[1], '--probe', engineName, file], { encoding: 'utf8', env: process.env });
  const line = child.stdout.trim().split('\n').pop() ?? '';
  if (child.status !== 0 || !line.startsWith('{')) throw new Error(`load probe ${engineName} ${file} failed (${child.status}): ${child.stderr.slice(-2000)}`);
  return JSON.parse(line) as LoadProbe;
}

// ---- One type: both engines on one file ----------------------------------------------------

interface TypeFigures {
  readonly type: GgufWeightType;
  readonly file: string;
  readonly fileBytes: number;
  readonly llamaContext: { readonly threads: number; readonly flashAttention: boolean | 'auto' };
  readonly llama: readonly PassFigures[];
  readonly bora: readonly PassFigures[];
  /** Per pass, Bora / llama.cpp (above 1: Bora is faster). */
  readonly decodeRatios: number[];
  readonly prefillRatios: number[];
  readonly batch16: { readonly llamaTokensPerSecond: number; readonly boraTokensPerSecond: number };
  readonly longPrefill: readonly { llamaMs: number; boraMs: number }[];
  readonly agreement: { readonly prefix: number; readonly same: number; readonly of: number };
  readonly logitCosine: { readonly cosine: number; readonly tokens: number; readonly underflowed: number };
  readonly load: { readonly bora: LoadProbe; readonly llama: LoadProbe };
}

async function measureType(llama: NlcLlama, type: GgufWeightType, file: string, useMmap: boolean, longPasses: number): Promise<TypeFigures> {
  const load = { llama: runProbe('llama', file), bora: runProbe('bora', file) };
  const gguf = await GgufCheckpoint.open(file);
  const vocab = gguf.config.vocabSize;
  const engine = await StageEngine.load(gguf, { start: 0, end: gguf.config.numLayers }, { compute: { threads: THREADS, linear: 'native' } });
  const model = await llama.loadModel({ modelPath: file, gpuLayers: 0, useMmap });
  let context: NlcContext | undefined;
  try {
    context = await model.createContext({ contextSize: CONTEXT_TOKENS, batchSize: PREFILL_TOKENS, sequences: 1, threads: { ideal: THREADS, min: THREADS } });
    const sequence = context.getSequence();
    const llamaPasses: PassFigures[] = [];
    const boraPasses: (PassFigures & { firstLogits: Float32Array })[] = [];
    for (let pass = 0; pass < PASSES; pass++) {
      llamaPasses.push(await llamaPass(sequence, pass, vocab));
      boraPasses.push(await boraPass(engine, pass, vocab));
    }
    const { firstProbabilities } = await llamaGreedy(sequence, promptIds(0, PREFILL_TOKENS, vocab), 1);
    const llamaContext = { threads: context.currentThreads, flashAttention: context.flashAttention };
    await context.dispose();
    context = undefined;
    const batch16 = { llamaTokensPerSecond: await llamaBatch(model, vocab), boraTokensPerSecond: await boraBatch(engine, vocab) };
    const longPrefill: { llamaMs: number; boraMs: number }[] = [];
    for (let pass = 0; pass < longPasses; pass++) longPrefill.push(await longPrefillPass(model, engine, vocab, 100 + pass));
    return {
      type,
      file,
      fileBytes: statSync(file).size,
      llamaContext,
      llama: llamaPasses,
      bora: boraPasses.map(({ firstLogits: _, ...p }) => p),
      decodeRatios: boraPasses.map((b, i) => b.decodeTokensPerSecond / llamaPasses[i].decodeTokensPerSecond),
      prefillRatios: boraPasses.map((b, i) => b.prefillTokensPerSecond / llamaPasses[i].prefillTokensPerSecond),
      batch16,
      longPrefill,
      agreement: tokenAgreement(llamaPasses[0].tokens.slice(0, AGREEMENT_TOKENS), boraPasses[0].tokens.slice(0, AGREEMENT_TOKENS)),
      logitCosine: centredLogitCosine(boraPasses[0].firstLogits, firstProbabilities),
      load,
    };
  } finally {
    await context?.dispose();
    await model.dispose();
    await engine.close();
  }
}

// ---- Main --------------------------------------------------------------------------------

function weightTypes(): GgufWeightType[] {
  const wanted = (process.env.BORA_LLAMA_TYPES ?? 'BF16,F16,Q8_0,Q4_0,Q4_K_M').split(',').map((t) => t.trim().toUpperCase());
  const unknown = wanted.filter((t) => !isGgufWeightType(t));
  if (unknown.length > 0) throw new Error(`BORA_LLAMA_TYPES: unknown type(s) ${unknown.join(', ')} (use F32, F16, BF16, Q8_0, Q4_0, Q4_K_M)`);
  return wanted as GgufWeightType[];
}

/** Re-runs this script with UV_THREADPOOL_SIZE=1 (it must be set before libuv starts its pool). */
function reexecWithSmallThreadPool(): never {
  const child = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, UV_THREADPOOL_SIZE: '1' },
  });
  process.exit(child.status ?? 1);
}

const ratioCell = (values: number[]): string => `**${median(values).toFixed(2)}x** (${values.map((r) => r.toFixed(2)).join(', ')})`;
const gb = (bytes: number): string => `${(bytes / 1e9).toFixed(2)} GB`;

function tables(runs: readonly TypeFigures[]): string {
  const rate = (values: number[], digits = 1): string => formatRate(median(values), digits);
  const speed = `| weights | file | decode batch 1 tok/s, llama.cpp / Bora | Bora / llama.cpp, paired passes | decode batch ${BATCH} aggregate tok/s, llama.cpp / Bora | Bora / llama.cpp | prefill ${PREFILL_TOKENS} tok/s, llama.cpp / Bora | Bora / llama.cpp, paired | prefill ${LONG_PREFILL_TOKENS} tok/s, llama.cpp / Bora | Bora / llama.cpp |
|---|---|---|---|---|---|---|---|---|---|
${runs
  .map((r) => {
    const long = r.longPrefill.length === 0 ? '- | -' : `${rate(r.longPrefill.map((p) => LONG_PREFILL_TOKENS / (p.llamaMs / 1000)))} / ${rate(r.longPrefill.map((p) => LONG_PREFILL_TOKENS / (p.boraMs / 1000)))} | ${ratioCell(r.longPrefill.map((p) => p.llamaMs / p.boraMs))}`;
    return `| ${r.type} | ${gb(r.fileBytes)} | ${rate(r.llama.map((p) => p.decodeTokensPerSecond), 2)} / ${rate(r.bora.map((p) => p.decodeTokensPerSecond), 2)} | ${ratioCell(r.decodeRatios)} | ${formatRate(r.batch16.llamaTokensPerSecond)} / ${formatRate(r.batch16.boraTokensPerSecond)} | **${(r.batch16.boraTokensPerSecond / r.batch16.llamaTokensPerSecond).toFixed(2)}x** | ${rate(r.llama.map((p) => p.prefillTokensPerSecond))} / ${rate(r.bora.map((p) => p.prefillTokensPerSecond))} | ${ratioCell(r.prefillRatios)} | ${long} |`;
  })
  .join('\n')}`;
  const memory = `| weights | file | load s, llama.cpp / Bora | Bora / llama.cpp | peak RSS, llama.cpp (/ file) | peak RSS, Bora (/ file) | Bora above its baseline / file |
|---|---|---|---|---|---|---|
${runs
  .map((r) => {
    const { bora, llama } = r.load;
    return `| ${r.type} | ${gb(r.fileBytes)} | ${llama.loadSeconds.toFixed(2)} / ${bora.loadSeconds.toFixed(2)} | **${(bora.loadSeconds / llama.loadSeconds).toFixed(1)}x** | ${gb(llama.peakRssBytes)} (${(llama.peakRssBytes / r.fileBytes).toFixed(2)}x) | ${gb(bora.peakRssBytes)} (**${(bora.peakRssBytes / r.fileBytes).toFixed(2)}x**) | ${((bora.peakRssBytes - bora.baselineRssBytes) / r.fileBytes).toFixed(2)}x |`;
  })
  .join('\n')}`;
  const agreement = `| weights | first ${AGREEMENT_TOKENS} greedy tokens: same (identical prefix) | step-0 logit cosine (centred; tokens compared) |
|---|---|---|
${runs.map((r) => `| ${r.type} | ${r.agreement.same} / ${r.agreement.of} (${r.agreement.prefix}) | ${r.logitCosine.cosine.toFixed(6)} (${r.logitCosine.tokens}${r.logitCosine.underflowed > 0 ? `, ${r.logitCosine.underflowed} underflowed` : ''}) |`).join('\n')}`;
  return `${speed}\n\n${memory}\n\n${agreement}`;
}

async function main(): Promise<void> {
  if (process.env.UV_THREADPOOL_SIZE === undefined) reexecWithSmallThreadPool();
  const nlcDir = process.env.NODE_LLAMA_CPP_DIR ?? DEFAULT_NLC_DIR;
  const useMmap = process.env.BORA_LLAMA_MMAP !== '0';
  const probeAt = process.argv.indexOf('--probe');
  if (probeAt >= 0) {
    await probeChild(process.argv[probeAt + 1] as 'bora' | 'llama', process.argv[probeAt + 2], nlcDir, useMmap);
    return;
  }
  const types = weightTypes();
  const nlc = await loadNodeLlamaCpp(nlcDir);
  if (nlc === undefined) {
    console.log(`${INSTALL_HINT}\n(looked in ${nlcDir})`);
    return;
  }
  const modelDir = process.env.BORA_LLAMA_MODEL ?? (await ensureBenchModel('mistral-1b-bf16', MISTRAL_1B));
  const ckpt = await Checkpoint.open(modelDir);
  const c = ckpt.config;
  const files = new Map<GgufWeightType, string>();
  for (const type of types) files.set(type, await ensureBenchGguf(ckpt, type));

  const llama = await nlc.module.getLlama({ gpu: false, build: 'never', skipDownload: true, maxThreads: THREADS, logLevel: 'warn' });
  const llamaCpp = { ...llama.llamaCppRelease, buildType: llama.buildType, systemInfo: llama.systemInfo };
  const longPasses = Number(process.env.BORA_LLAMA_LONG_PASSES ?? 1);
  const runs: TypeFigures[] = [];
  for (const type of types) {
    const figures = await measureType(llama, type, files.get(type)!, useMmap, longPasses);
    runs.push(figures);
    // Each type's tables as soon as it is measured (a long run on a busy machine keeps what it has).
    console.error(`${type} done:\n${tables([figures])}`);
    writeFileSync(join(BENCH_DIR, 'llama-cpp.partial.json'), JSON.stringify(runs, null, 2));
  }
  await llama.dispose();

  const result = {
    model: { dir: modelDir, hiddenSize: c.hiddenSize, numLayers: c.numLayers, intermediateSize: c.intermediateSize, heads: c.numHeads, kvHeads: c.numKvHeads, vocab: c.vocabSize },
    nodeLlamaCpp: nlc.version,
    llamaCpp,
    threads: THREADS,
    uvThreadpoolSize: process.env.UV_THREADPOOL_SIZE,
    useMmap,
    passes: PASSES,
    prefillTokens: PREFILL_TOKENS,
    decodeSteps: DECODE_STEPS,
    longPrefillTokens: LONG_PREFILL_TOKENS,
    runs,
  };
  writeFileSync(join(BENCH_DIR, 'llama-cpp.json'), JSON.stringify(result, null, 2));
  console.log(`llama.cpp ${llamaCpp.release} (node-llama-cpp ${nlc.version}, ${llamaCpp.buildType}) and Bora (native kernels) on the same GGUF files; ${THREADS} threads each, CPU, llama.cpp mmap ${useMmap ? 'on' : 'off'}, UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE}; ${PASSES} paired passes per type (llama.cpp then Bora, same prompt), batch ${BATCH} and ${LONG_PREFILL_TOKENS}-token prefill ${longPasses} pass(es); load and peak RSS from a fresh process per engine and file

${tables(runs)}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
