/**
 * npm run bench:engine — the in-process engine on a ~1B Mistral-shaped random checkpoint (bf16):
 * load time, peak RSS, prefill tokens/s, decode tokens/s at batch 1 and 16, and the machine's
 * read bandwidth measured in the same run, so decode can be compared with its bandwidth bound.
 * Measures each linear-layer backend in turn (native kernels first, so the peak RSS after it is
 * its own; then onnxruntime alone): BORA_BENCH_BACKENDS=native,onnx picks them. Then the native
 * kernels on the same model quantized in memory to each block format (BORA_BENCH_QUANT, default
 * Q8_0,Q4_0,Q4_K,Q6_K; "none" skips), with bytes read per token from the quantized sizes. A
 * third table times a 128- and a 2048-token prefill on the native kernels and splits the time
 * between the linear kernels, attention, the other kernels and the TypeScript around them
 * (BORA_BENCH_LONG_PASSES runs each, default 2; 0 skips it). Prints markdown tables and writes .bench/engine.json.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { StageEngine, type SliceInput } from '../common/engine/stage-engine';
import { defaultComputeSettings, type ComputeSettings } from '../common/engine/compute-settings';
import { sequenceId } from '../common/ids';
import { nativeKernels, type LinearBackend } from '../common/kernels/native-kernels';
import { Checkpoint } from '../common/model/checkpoint';
import { isQuantDtype, type QuantDtype } from '../common/model/dtype';
import type { WeightSource } from '../common/model/weight-source';
import { everyMatrix, QuantizedSource } from '../test/support/quantized-source';
import { tensorBytes } from '../common/model/dtype';
import { attentionSpecs } from '../common/model/weights';
import { measureReadBandwidth } from './bandwidth';
import { BENCH_DIR, MISTRAL_1B, ensureBenchModel } from './bench-model';
import { formatRate, median } from './stats';

const PREFILL_TOKENS = 128;
const DECODE_STEPS = 24;
const BATCH = 16;
const BATCH_PROMPT_TOKENS = 16;

function argmax(logits: Float32Array, row: number, vocab: number): number {
  let best = row * vocab;
  for (let i = best + 1; i < (row + 1) * vocab; i++) if (logits[i] > logits[best]) best = i;
  return best - row * vocab;
}

function promptIds(seed: number, length: number, vocab: number): number[] {
  return Array.from({ length }, (_, i) => 1 + ((seed * 7919 + i * 104729) % (vocab - 1)));
}

async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const start = process.hrtime.bigint();
  const value = await fn();
  return { value, ms: Number(process.hrtime.bigint() - start) / 1e6 };
}

interface EngineFigures {
  readonly backend: LinearBackend;
  /** Storage of the linear layers' weights: the checkpoint's bf16, or a block format. */
  readonly weights: string;
  readonly loadSeconds: number;
  /** Peak RSS of the process so far (native runs first, so its figure is its own). */
  readonly peakRssBytes: number;
  readonly prefillTokensPerSecond: number;
  readonly decodeBatch1TokensPerSecond: number;
  readonly decodeBatch16TokensPerSecond: number;
  /** Bytes of weights one decode step reads: every layer's matrices and the LM head, as held. */
  readonly weightBytesPerToken: number;
  /** First generated token of the batch-1 run (the backends must agree). */
  readonly firstToken: number;
  readonly samplesMs: { prefill: number[]; decode1: number[]; decode16: number[] };
}

async function measure(ckpt: WeightSource, settings: ComputeSettings, backend: LinearBackend): Promise<EngineFigures> {
  const c = ckpt.config;
  const load = await timed(() => StageEngine.load(ckpt, { start: 0, end: c.numLayers }, { compute: { ...settings, linear: backend } }));
  const engine = load.value;

  // Prefill: one 128-token prompt, repeated; tokens/s from the median.
  const prefillMs: number[] = [];
  for (let r = 0; r < 3; r++) {
    const ids = promptIds(r, PREFILL_TOKENS, c.vocabSize);
    const id = sequenceId(`prefill-${r}`);
    prefillMs.push((await timed(() => engine.forward({ slices: [{ id, startPosition: 0, tokenCount: ids.length, tokenIds: ids }] }))).ms);
    engine.release(id);
  }

  // Batch-1 decode after a 128-token prompt.
  const one = sequenceId('decode-1');
  const prompt = promptIds(7, PREFILL_TOKENS, c.vocabSize);
  let out = await engine.forward({ slices: [{ id: one, startPosition: 0, tokenCount: prompt.length, tokenIds: prompt }] });
  const firstToken = argmax(out.logits!, 0, c.vocabSize);
  const decode1Ms: number[] = [];
  for (let step = 0; step < DECODE_STEPS; step++) {
    const token = argmax(out.logits!, 0, c.vocabSize);
    const run = await timed(() => engine.forward({ slices: [{ id: one, startPosition: PREFILL_TOKENS + step, tokenCount: 1, tokenIds: [token] }] }));
    out = run.value;
    decode1Ms.push(run.ms);
  }
  engine.release(one);

  // Batch-16 decode: 16 sequences with their own prompts, stepping together.
  const ids = Array.from({ length: BATCH }, (_, b) => sequenceId(`batch-${b}`));
  const prefills: SliceInput[] = ids.map((id, b) => {
    const tokens = promptIds(100 + b, BATCH_PROMPT_TOKENS, c.vocabSize);
    return { id, startPosition: 0, tokenCount: tokens.length, tokenIds: tokens };
  });
  out = await engine.forward({ slices: prefills });
  const decode16Ms: number[] = [];
  for (let step = 0; step < DECODE_STEPS / 2; step++) {
    const slices = ids.map((id, b) => ({ id, startPosition: BATCH_PROMPT_TOKENS + step, tokenCount: 1, tokenIds: [argmax(out.logits!, b, c.vocabSize)] }));
    const run = await timed(() => engine.forward({ slices }));
    out = run.value;
    decode16Ms.push(run.ms);
  }
  await engine.close();

  const H = c.hiddenSize;
  const perLayer = (c.numHeads + 2 * c.numKvHeads) * c.headDim * H + H * c.numHeads * c.headDim + 3 * H * c.intermediateSize;
  const q = await ckpt.readRaw(attentionSpecs(c, 0).q.name);
  const bytesPerWeight = backend === 'native' ? tensorBytes(q.dtype, q.shape)! / (q.shape[0] * q.shape[1]) : 4;
  return {
    backend,
    weights: q.dtype,
    loadSeconds: load.ms / 1000,
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
    prefillTokensPerSecond: PREFILL_TOKENS / (median(prefillMs) / 1000),
    decodeBatch1TokensPerSecond: 1000 / median(decode1Ms),
    decodeBatch16TokensPerSecond: BATCH / (median(decode16Ms) / 1000),
    weightBytesPerToken: bytesPerWeight * (c.numLayers * perLayer + c.vocabSize * H),
    firstToken,
    samplesMs: { prefill: prefillMs, decode1: decode1Ms, decode16: decode16Ms },
  };
}

// ---- The layer step: long-prompt prefill and where its time goes ---------------------------

const LONG_PREFILL_TOKENS = [128, 2048];

interface PrefillBreakdown {
  readonly tokens: number;
  readonly samplesMs: number[];
  readonly tokensPerSecond: number;
  /** Of the median run's time: the linear kernels, attention, the other kernels (RMSNorm, SwiGLU), the rest (TypeScript glue). */
  readonly linearMs: number;
  readonly attentionMs: number;
  readonly otherKernelsMs: number;
  readonly glueMs: number;
}

/**
 * Prefill of a 128- and a 2048-token prompt on the native engine (BORA_BENCH_LONG_PASSES runs
 * each, default 2), with the time inside each kernel entry of the median run.
 */
async function prefillBreakdown(ckpt: Checkpoint, settings: ComputeSettings): Promise<PrefillBreakdown[]> {
  const kernels = nativeKernels();
  const passes = Number(process.env.BORA_BENCH_LONG_PASSES ?? 2);
  if (kernels === undefined || !(passes >= 1)) return [];
  const c = ckpt.config;
  const engine = await StageEngine.load(ckpt, { start: 0, end: c.numLayers }, { compute: { ...settings, linear: 'native' } });
  const spent = { linear: 0, attention: 0, other: 0 };
  const mutable = kernels as unknown as Record<string, (...args: unknown[]) => unknown>;
  const originals = new Map<string, (...args: unknown[]) => unknown>();
  for (const [name, bucket] of [['linear', 'linear'], ['attention', 'attention'], ['rmsNorm', 'other'], ['siluMul', 'other']] as const) {
    const original = mutable[name];
    originals.set(name, original);
    mutable[name] = (...args: unknown[]): unknown => {
      const start = process.hrtime.bigint();
      const value = original(...args);
      spent[bucket] += Number(process.hrtime.bigint() - start) / 1e6;
      return value;
    };
  }
  const out: PrefillBreakdown[] = [];
  try {
    for (const tokens of LONG_PREFILL_TOKENS) {
      const runs: { ms: number; linear: number; attention: number; other: number }[] = [];
      for (let r = 0; r < passes; r++) {
        const ids = promptIds(200 + r, tokens, c.vocabSize);
        const id = sequenceId(`long-prefill-${tokens}-${r}`);
        spent.linear = spent.attention = spent.other = 0;
        const { ms } = await timed(() => engine.forward({ slices: [{ id, startPosition: 0, tokenCount: tokens, tokenIds: ids }] }));
        engine.release(id);
        runs.push({ ms, ...spent });
      }
      const mid = [...runs].sort((a, b) => a.ms - b.ms)[Math.floor((runs.length - 1) / 2)];
      out.push({
        tokens,
        samplesMs: runs.map((r) => r.ms),
        tokensPerSecond: tokens / (median(runs.map((r) => r.ms)) / 1000),
        linearMs: mid.linear,
        attentionMs: mid.attention,
        otherKernelsMs: mid.other,
        glueMs: mid.ms - mid.linear - mid.attention - mid.other,
      });
    }
  } finally {
    for (const [name, original] of originals) mutable[name] = original;
    await engine.close();
  }
  return out;
}

function prefillTable(rows: readonly PrefillBreakdown[]): string {
  const share = (part: number, r: PrefillBreakdown): string => `${(part / 1000).toFixed(2)} s (${((100 * part) / (r.linearMs + r.attentionMs + r.otherKernelsMs + r.glueMs)).toFixed(0)} %)`;
  return `| prefill, native kernels | tok/s (median) | linear kernels | attention | RMSNorm + SwiGLU | TypeScript glue |
|---|---|---|---|---|---|
${rows.map((r) => `| ${r.tokens}-token prompt | ${formatRate(r.tokensPerSecond)} | ${share(r.linearMs, r)} | ${share(r.attentionMs, r)} | ${share(r.otherKernelsMs, r)} | ${share(r.glueMs, r)} |`).join('\n')}
(${rows[0]?.samplesMs.length ?? 0} runs each; the time split is the median run's)`;
}

function backendsToRun(): LinearBackend[] {
  const wanted = (process.env.BORA_BENCH_BACKENDS ?? 'native,onnx').split(',') as LinearBackend[];
  return wanted.filter((b) => b === 'onnx' || nativeKernels() !== undefined);
}

function quantTypesToRun(): QuantDtype[] {
  const wanted = process.env.BORA_BENCH_QUANT ?? 'Q8_0,Q4_0,Q4_K,Q6_K';
  if (wanted === 'none' || wanted === '') return [];
  return wanted.split(',').map((t) => {
    if (!isQuantDtype(t)) throw new Error(`BORA_BENCH_QUANT: ${t} is not one of Q8_0, Q4_0, Q4_K, Q6_K`);
    return t;
  });
}

async function main(): Promise<void> {
  const settings = defaultComputeSettings();
  const dir = await ensureBenchModel('mistral-1b-bf16', MISTRAL_1B);
  const ckpt = await Checkpoint.open(dir);
  const c = ckpt.config;
  const runs: EngineFigures[] = [];
  for (const backend of backendsToRun()) runs.push(await measure(ckpt, settings, backend));
  const quantRuns: EngineFigures[] = [];
  const kernels = nativeKernels();
  if (kernels !== undefined) {
    for (const dtype of quantTypesToRun()) {
      const source = new QuantizedSource(ckpt, everyMatrix(dtype), { kernels, threads: settings.threads });
      quantRuns.push(await measure(source, settings, 'native'));
    }
  }
  const prefill = await prefillBreakdown(ckpt, settings);
  const bandwidth = await measureReadBandwidth({ intraOpThreads: settings.threads, allowSpinning: false });
  const bound = (r: EngineFigures): number => bandwidth.best.bytesPerSecond / r.weightBytesPerToken;

  const result = {
    model: { dir, hiddenSize: c.hiddenSize, numLayers: c.numLayers, intermediateSize: c.intermediateSize, heads: c.numHeads, kvHeads: c.numKvHeads, vocab: c.vocabSize, storage: 'bf16', compute: 'f32' },
    threads: settings.threads,
    isa: nativeKernels()?.isa(),
    readBandwidthGBps: bandwidth.best.bytesPerSecond / 1e9,
    bandwidthProbes: bandwidth.probes.map((p) => ({ name: p.name, GBps: p.bytesPerSecond / 1e9, samplesMs: p.samplesMs })),
    prefillBreakdown: prefill,
    runs: runs.map((r) => ({ ...r, bandwidthBoundTokensPerSecond: bound(r), decodeFractionOfBound: r.decodeBatch1TokensPerSecond / bound(r) })),
    quantized: quantRuns.map((r) => ({ ...r, bandwidthBoundTokensPerSecond: bound(r), decodeFractionOfBound: r.decodeBatch1TokensPerSecond / bound(r) })),
  };
  writeFileSync(join(BENCH_DIR, 'engine.json'), JSON.stringify(result, null, 2));

  const row = (label: string, f: (r: EngineFigures) => string): string => `| ${label} | ${runs.map(f).join(' | ')} |`;
  console.log(`| metric | ${runs.map((r) => (r.backend === 'native' ? `native kernels (${result.isa})` : 'onnxruntime only')).join(' | ')} |
|---|${runs.map(() => '---|').join('')}
${row('load time', (r) => `${r.loadSeconds.toFixed(1)} s`)}
${row('peak RSS (process so far)', (r) => `${(r.peakRssBytes / 2 ** 30).toFixed(2)} GiB`)}
${row(`prefill (${PREFILL_TOKENS}-token prompt)`, (r) => `${formatRate(r.prefillTokensPerSecond)} tok/s`)}
${row(`decode, batch 1 (median of ${DECODE_STEPS} steps)`, (r) => `${formatRate(r.decodeBatch1TokensPerSecond, 2)} tok/s`)}
${row(`decode, batch ${BATCH} (aggregate)`, (r) => `${formatRate(r.decodeBatch16TokensPerSecond)} tok/s`)}
${row('weight bytes read per token', (r) => `${(r.weightBytesPerToken / 1e9).toFixed(2)} GB`)}
${row('bandwidth bound, batch-1 decode (fastest probe)', (r) => `${formatRate(bound(r), 2)} tok/s`)}
${row('batch-1 decode / bound', (r) => `${(100 * (r.decodeBatch1TokensPerSecond / bound(r))).toFixed(0)} %`)}
${row('first generated token', (r) => String(r.firstToken))}
${bandwidth.probes.map((p) => `| read bandwidth: ${p.name}, 1 GiB, ${settings.threads} threads | ${formatRate(p.bytesPerSecond / 1e9)} GB/s |`).join('\n')}`);
  const native = runs.find((r) => r.backend === 'native');
  const byType = [...(native !== undefined ? [native] : []), ...quantRuns];
  if (quantRuns.length > 0) {
    console.log(`
| weights (native kernels, ${result.isa}) | prefill tok/s | batch-1 decode tok/s | batch-${BATCH} decode tok/s | weight bytes / token | batch-1 decode / bandwidth bound | first token |
|---|---|---|---|---|---|---|
${byType.map((r) => `| ${r.weights} | ${formatRate(r.prefillTokensPerSecond)} | ${formatRate(r.decodeBatch1TokensPerSecond, 2)} | ${formatRate(r.decodeBatch16TokensPerSecond)} | ${(r.weightBytesPerToken / 1e9).toFixed(2)} GB | ${(100 * (r.decodeBatch1TokensPerSecond / bound(r))).toFixed(0)} % | ${r.firstToken} |`).join('\n')}`);
  }
  if (prefill.length > 0) console.log(`\n${prefillTable(prefill)}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
