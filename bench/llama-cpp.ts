/**
 * npm run bench:llama — llama.cpp, through node-llama-cpp, on the checkpoint bench:engine uses, so
 * Bora's batch-1 decode can be compared with llama.cpp's on the same machine and weights.
 *
 * The checkpoint is converted to GGUF by common/model/gguf/gguf-writer.ts (cached as .bench/gguf/<model>-<type>.gguf,
 * rewritten when the checkpoint is newer). Per weight type: load time, prefill tokens/s of a
 * 128-token prompt, and batch-1 greedy decode tokens/s (median time per token over 32 steps),
 * in 3 passes on one loaded model; CPU only, 2 threads. Prints a markdown table and writes
 * .bench/llama-cpp.json.
 *
 * node-llama-cpp is not a dependency of Bora: install it outside the repository (see
 * INSTALL_HINT); without it the benchmark says so and exits 0. The process re-runs itself with
 * UV_THREADPOOL_SIZE=1 unless that is set: libuv's default pool of 4 threads beside llama.cpp's
 * 2 cost 12-15 ms per token on 2 cores (RUNTIME-FACTS.md).
 *
 * A second section times a 2048-token prefill, llama.cpp and Bora paired in each pass
 * (BORA_LLAMA_LONG_PASSES, default 2; 0 skips it).
 *
 * Environment: BORA_LLAMA_MODEL (checkpoint dir; default the engine benchmark's 1B model),
 * BORA_LLAMA_TYPES (default BF16,F16,F32; also Q8_0, Q4_0), NODE_LLAMA_CPP_DIR (default
 * /tmp/llama/node_modules/node-llama-cpp), BORA_LLAMA_MMAP=0 to read weights into memory
 * instead of node-llama-cpp's default mmap.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { StageEngine } from '../common/engine/stage-engine';
import { sequenceId } from '../common/ids';
import { Checkpoint } from '../common/model/checkpoint';
import { BENCH_DIR, MISTRAL_1B, ensureBenchModel } from './bench-model';
import { isGgufWeightType, writeGguf, type GgufWeightType } from '../common/model/gguf/gguf-writer';
import { formatRate, median } from './stats';

const THREADS = 2;
const PREFILL_TOKENS = 128;
const DECODE_STEPS = 32;
const PASSES = 5;
const CONTEXT_TOKENS = 256;
/** The long prompt of the paired prefill section (longPrefill). */
const LONG_PREFILL_TOKENS = 2048;

const DEFAULT_NLC_DIR = '/tmp/llama/node_modules/node-llama-cpp';
const INSTALL_HINT = `node-llama-cpp is not installed at the path NODE_LLAMA_CPP_DIR names. Install it outside the repository:
  mkdir -p /tmp/llama && cd /tmp/llama && npm init -y && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm install node-llama-cpp@3.21.1
(its prebuilt CPU binary, @node-llama-cpp/linux-x64, comes with it), then rerun npm run bench:llama.`;

// ---- The slice of node-llama-cpp's API used here ------------------------------------------

type Token = number;

interface NlcSequence {
  evaluate(tokens: Token[], options: { temperature: number; yieldEogToken: boolean }): AsyncGenerator<Token, void, void | Token | Token[]>;
  clearHistory(): Promise<void>;
}

interface NlcContext {
  readonly contextSize: number;
  readonly batchSize: number;
  readonly currentThreads: number;
  readonly flashAttention: boolean | 'auto';
  getSequence(): NlcSequence;
  dispose(): Promise<void>;
}

interface NlcModel {
  readonly size: number;
  createContext(options: { contextSize: number; batchSize: number; sequences: number; threads: { ideal: number; min: number } }): Promise<NlcContext>;
  dispose(): Promise<void>;
}

interface NlcLlama {
  readonly buildType: string;
  readonly llamaCppRelease: { readonly repo: string; readonly release: string };
  readonly systemInfo: string;
  loadModel(options: { modelPath: string; gpuLayers: number; useMmap: boolean }): Promise<NlcModel>;
  dispose(): Promise<void>;
}

interface NodeLlamaCpp {
  getLlama(options: { gpu: false; build: 'never'; skipDownload: true; maxThreads: number; logLevel: 'warn' }): Promise<NlcLlama>;
}

/** A real dynamic import: tsc would turn `import()` into `require()`, which cannot load ESM. */
const importEsm = new Function('specifier', 'return import(specifier)') as (specifier: string) => Promise<unknown>;

async function loadNodeLlamaCpp(dir: string): Promise<{ module: NodeLlamaCpp; version: string } | undefined> {
  const packageJson = join(dir, 'package.json');
  if (!existsSync(packageJson)) return undefined;
  const pkg = JSON.parse(readFileSync(packageJson, 'utf8')) as { version: string; main?: string };
  const module = (await importEsm(pathToFileURL(join(dir, pkg.main ?? 'dist/index.js')).href)) as NodeLlamaCpp;
  return { module, version: pkg.version };
}

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

interface PassFigures {
  readonly prefillMs: number;
  readonly prefillTokensPerSecond: number;
  readonly decodeMs: number[];
  readonly decodeTokensPerSecond: number;
  /** Greedy tokens: the one after the prompt, then one per decode step. */
  readonly tokens: Token[];
}

/** One pass: a fresh 128-token prompt, then DECODE_STEPS greedy steps, each timed. */
async function runPass(sequence: NlcSequence, seed: number, vocab: number): Promise<PassFigures> {
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
  return {
    prefillMs: prefill.ms,
    prefillTokensPerSecond: PREFILL_TOKENS / (prefill.ms / 1000),
    decodeMs,
    decodeTokensPerSecond: 1000 / median(decodeMs),
    tokens,
  };
}

interface TypeFigures {
  readonly type: GgufWeightType;
  readonly file: string;
  readonly fileBytes: number;
  readonly loadSeconds: number;
  readonly contextThreads: number;
  readonly flashAttention: boolean | 'auto';
  readonly passes: PassFigures[];
  /** Medians over passes. */
  readonly prefillTokensPerSecond: number;
  readonly decodeTokensPerSecond: number;
}

interface LoadedType {
  readonly type: GgufWeightType;
  readonly file: string;
  readonly loadSeconds: number;
  readonly model: NlcModel;
  readonly context: NlcContext;
  readonly sequence: NlcSequence;
}

async function loadType(llama: NlcLlama, type: GgufWeightType, file: string, useMmap: boolean): Promise<LoadedType> {
  const load = await timed(() => llama.loadModel({ modelPath: file, gpuLayers: 0, useMmap }));
  const context = await load.value.createContext({
    contextSize: CONTEXT_TOKENS,
    batchSize: PREFILL_TOKENS,
    sequences: 1,
    threads: { ideal: THREADS, min: THREADS },
  });
  return { type, file, loadSeconds: load.ms / 1000, model: load.value, context, sequence: context.getSequence() };
}

function summarise(loaded: LoadedType, passes: PassFigures[]): TypeFigures {
  return {
    type: loaded.type,
    file: loaded.file,
    fileBytes: statSync(loaded.file).size,
    loadSeconds: loaded.loadSeconds,
    contextThreads: loaded.context.currentThreads,
    flashAttention: loaded.context.flashAttention,
    passes,
    prefillTokensPerSecond: median(passes.map((p) => p.prefillTokensPerSecond)),
    decodeTokensPerSecond: median(passes.map((p) => p.decodeTokensPerSecond)),
  };
}

/** Bora's in-process engine on the same prompt: one prefill call, then DECODE_STEPS greedy steps. */
async function runBoraPass(engine: StageEngine, seed: number, vocab: number): Promise<PassFigures> {
  const id = sequenceId(`llama-bench-${seed}`);
  const prompt = promptIds(seed, PREFILL_TOKENS, vocab);
  const argmax = (logits: Float32Array): Token => logits.reduce((best, v, i) => (v > logits[best] ? i : best), 0);
  const prefill = await timed(() => engine.forward({ slices: [{ id, startPosition: 0, tokenCount: PREFILL_TOKENS, tokenIds: prompt }] }));
  const tokens = [argmax(prefill.value.logits!)];
  const decodeMs: number[] = [];
  for (let step = 0; step < DECODE_STEPS; step++) {
    const tokenIds = [tokens[tokens.length - 1]];
    const run = await timed(() => engine.forward({ slices: [{ id, startPosition: PREFILL_TOKENS + step, tokenCount: 1, tokenIds }] }));
    tokens.push(argmax(run.value.logits!));
    decodeMs.push(run.ms);
  }
  engine.release(id);
  return { prefillMs: prefill.ms, prefillTokensPerSecond: PREFILL_TOKENS / (prefill.ms / 1000), decodeMs, decodeTokensPerSecond: 1000 / median(decodeMs), tokens };
}

// ---- GGUF cache --------------------------------------------------------------------------

/** Newest modification time of the checkpoint's files. */
function checkpointMtimeMs(dir: string): number {
  return Math.max(...readdirSync(dir).filter((f) => f === 'config.json' || f.endsWith('.safetensors')).map((f) => statSync(join(dir, f)).mtimeMs));
}

async function ensureGguf(ckpt: Checkpoint, type: GgufWeightType): Promise<string> {
  const dir = join(BENCH_DIR, 'gguf');
  mkdirSync(dir, { recursive: true });
  const name = basename(ckpt.dir);
  const file = join(dir, `${name}-${type}.gguf`);
  if (existsSync(file) && statSync(file).mtimeMs >= checkpointMtimeMs(ckpt.dir)) return file;
  const started = Date.now();
  const written = await writeGguf(ckpt, file, type, { name });
  console.error(`wrote ${file}: ${(written.fileBytes / 1e9).toFixed(2)} GB in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return file;
}

// ---- Main --------------------------------------------------------------------------------

function weightTypes(): GgufWeightType[] {
  const wanted = (process.env.BORA_LLAMA_TYPES ?? 'BF16,F16,F32').split(',').map((t) => t.trim().toUpperCase());
  const unknown = wanted.filter((t) => !isGgufWeightType(t));
  if (unknown.length > 0) throw new Error(`BORA_LLAMA_TYPES: unknown type(s) ${unknown.join(', ')} (use F32, F16, BF16, Q8_0, Q4_0)`);
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

// ---- Long prompts: a 2048-token prefill, paired ------------------------------------------

interface LongPrefillFigures {
  readonly type: GgufWeightType;
  readonly flashAttention: boolean | 'auto';
  readonly llamaMs: number[];
  readonly boraMs: number[];
  /** Per pass: llama.cpp's time / Bora's (above 1: Bora is faster). */
  readonly boraOverLlama: number[];
}

/**
 * For each type: a context that holds the long prompt in one batch, then per pass llama.cpp's
 * prefill (time to the first generated token) and Bora's (one forward call), same prompt.
 */
async function longPrefill(loaded: readonly LoadedType[], engine: StageEngine, vocab: number, passes: number): Promise<LongPrefillFigures[]> {
  const out: LongPrefillFigures[] = [];
  for (const l of loaded) {
    const context = await l.model.createContext({
      contextSize: LONG_PREFILL_TOKENS + 16,
      batchSize: LONG_PREFILL_TOKENS,
      sequences: 1,
      threads: { ideal: THREADS, min: THREADS },
    });
    const sequence = context.getSequence();
    const figures: LongPrefillFigures = { type: l.type, flashAttention: context.flashAttention, llamaMs: [], boraMs: [], boraOverLlama: [] };
    for (let pass = 0; pass < passes; pass++) {
      const prompt = promptIds(100 + pass, LONG_PREFILL_TOKENS, vocab);
      await sequence.clearHistory();
      const generator = sequence.evaluate(prompt, { temperature: 0, yieldEogToken: true });
      const llama = await timed(() => generator.next());
      await generator.return();
      const id = sequenceId(`llama-long-${pass}`);
      const bora = await timed(() => engine.forward({ slices: [{ id, startPosition: 0, tokenCount: prompt.length, tokenIds: prompt }] }));
      engine.release(id);
      figures.llamaMs.push(llama.ms);
      figures.boraMs.push(bora.ms);
      figures.boraOverLlama.push(llama.ms / bora.ms);
    }
    await context.dispose();
    out.push(figures);
  }
  return out;
}

function longPrefillTable(figures: readonly LongPrefillFigures[]): string {
  const rate = (ms: number[]): string => formatRate(LONG_PREFILL_TOKENS / (median(ms) / 1000));
  return `| weights | llama.cpp prefill ${LONG_PREFILL_TOKENS} tok/s, median | Bora prefill ${LONG_PREFILL_TOKENS} tok/s, median | Bora / llama.cpp, paired passes | llama.cpp flash attention |
|---|---|---|---|---|
${figures.map((f) => `| ${f.type} | ${rate(f.llamaMs)} | ${rate(f.boraMs)} | **${median(f.boraOverLlama).toFixed(2)}x** (${f.boraOverLlama.map((r) => r.toFixed(2)).join(', ')}) | ${String(f.flashAttention)} |`).join('\n')}
(${figures[0]?.llamaMs.length ?? 0} passes; Bora runs bf16 weights in every row)`;
}

async function main(): Promise<void> {
  if (process.env.UV_THREADPOOL_SIZE === undefined) reexecWithSmallThreadPool();
  const types = weightTypes();
  const nlcDir = process.env.NODE_LLAMA_CPP_DIR ?? DEFAULT_NLC_DIR;
  const nlc = await loadNodeLlamaCpp(nlcDir);
  if (nlc === undefined) {
    console.log(`${INSTALL_HINT}\n(looked in ${nlcDir})`);
    return;
  }
  const useMmap = process.env.BORA_LLAMA_MMAP !== '0';
  const modelDir = process.env.BORA_LLAMA_MODEL ?? (await ensureBenchModel('mistral-1b-bf16', MISTRAL_1B));
  const ckpt = await Checkpoint.open(modelDir);
  const c = ckpt.config;
  const files = new Map<GgufWeightType, string>();
  for (const type of types) files.set(type, await ensureGguf(ckpt, type));

  const llama = await nlc.module.getLlama({ gpu: false, build: 'never', skipDownload: true, maxThreads: THREADS, logLevel: 'warn' });
  const llamaCpp = { ...llama.llamaCppRelease, buildType: llama.buildType, systemInfo: llama.systemInfo };
  const loaded: LoadedType[] = [];
  for (const type of types) loaded.push(await loadType(llama, type, files.get(type)!, useMmap));
  const boraLoad = await timed(() => StageEngine.load(ckpt, { start: 0, end: c.numLayers }, { compute: { threads: THREADS, linear: 'native' } }));
  const engine = boraLoad.value;

  // Passes alternate: each type's llama.cpp pass, then Bora's, on the same prompt.
  const llamaPasses = loaded.map((): PassFigures[] => []);
  const boraPasses: PassFigures[] = [];
  const ratios = loaded.map((): number[] => []);
  for (let pass = 0; pass < PASSES; pass++) {
    for (const [i, l] of loaded.entries()) {
      llamaPasses[i].push(await runPass(l.sequence, pass, c.vocabSize));
      const bora = await runBoraPass(engine, pass, c.vocabSize);
      boraPasses.push(bora);
      ratios[i].push(bora.decodeTokensPerSecond / llamaPasses[i][pass].decodeTokensPerSecond);
    }
  }
  const runs = loaded.map((l, i) => summarise(l, llamaPasses[i]));
  const long = await longPrefill(loaded, engine, c.vocabSize, Number(process.env.BORA_LLAMA_LONG_PASSES ?? 2));
  const boraFigures = {
    loadSeconds: boraLoad.ms / 1000,
    passes: boraPasses,
    prefillTokensPerSecond: median(boraPasses.map((p) => p.prefillTokensPerSecond)),
    decodeTokensPerSecond: median(boraPasses.map((p) => p.decodeTokensPerSecond)),
  };
  await engine.close();
  for (const l of loaded) {
    await l.context.dispose();
    await l.model.dispose();
  }
  await llama.dispose();

  const result = {
    model: { dir: modelDir, hiddenSize: c.hiddenSize, numLayers: c.numLayers, intermediateSize: c.intermediateSize, heads: c.numHeads, kvHeads: c.numKvHeads, vocab: c.vocabSize },
    nodeLlamaCpp: nlc.version,
    llamaCpp,
    threads: THREADS,
    uvThreadpoolSize: process.env.UV_THREADPOOL_SIZE,
    useMmap,
    prefillTokens: PREFILL_TOKENS,
    decodeSteps: DECODE_STEPS,
    runs,
    bora: boraFigures,
    longPrefillTokens: LONG_PREFILL_TOKENS,
    longPrefill: long,
    boraOverLlamaDecode: Object.fromEntries(loaded.map((l, i) => [l.type, { median: median(ratios[i]), perPass: ratios[i] }])),
  };
  writeFileSync(join(BENCH_DIR, 'llama-cpp.json'), JSON.stringify(result, null, 2));

  const range = (values: number[], digits: number): string =>
    `${formatRate(Math.min(...values), digits)}-${formatRate(Math.max(...values), digits)}`;
  console.log(`llama.cpp ${llamaCpp.release} (node-llama-cpp ${nlc.version}, ${llamaCpp.buildType}), ${THREADS} threads, CPU, mmap ${useMmap ? 'on' : 'off'}, UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE}
| weights | file | load | prefill (${PREFILL_TOKENS} tokens) tok/s, median (range) | decode batch 1 tok/s, median (range) | ms/token, median | Bora decode / this, paired passes |
|---|---|---|---|---|---|---|
${runs
  .map((r, i) => {
    const prefill = r.passes.map((p) => p.prefillTokensPerSecond);
    const decode = r.passes.map((p) => p.decodeTokensPerSecond);
    return `| llama.cpp ${r.type} | ${(r.fileBytes / 1e9).toFixed(2)} GB | ${r.loadSeconds.toFixed(1)} s | ${formatRate(r.prefillTokensPerSecond)} (${range(prefill, 1)}) | ${formatRate(r.decodeTokensPerSecond, 2)} (${range(decode, 2)}) | ${(1000 / r.decodeTokensPerSecond).toFixed(1)} | **${median(ratios[i]).toFixed(2)}x** (${range(ratios[i], 2)}) |`;
  })
  .join('\n')}
| Bora, native kernels, bf16 weights | (safetensors) | ${boraFigures.loadSeconds.toFixed(1)} s | ${formatRate(boraFigures.prefillTokensPerSecond)} (${range(boraPasses.map((p) => p.prefillTokensPerSecond), 1)}) | ${formatRate(boraFigures.decodeTokensPerSecond, 2)} (${range(boraPasses.map((p) => p.decodeTokensPerSecond), 2)}) | ${(1000 / boraFigures.decodeTokensPerSecond).toFixed(1)} | |
(${PASSES} passes; in each pass every llama.cpp type runs and then Bora on the same prompt; decode is a pass's median time per token over ${DECODE_STEPS} steps after the prompt)`);
  if (long.length > 0 && long[0].llamaMs.length > 0) console.log(`\n${longPrefillTable(long)}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
