/**
 * npm run bench:engine — the in-process engine on a ~1B Mistral-shaped random checkpoint:
 * load time, peak RSS, prefill tokens/s, decode tokens/s at batch 1 and 16, and the machine's
 * read bandwidth measured in the same run, so decode can be compared with its bandwidth bound.
 * Prints a markdown table and writes .bench/engine.json.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { StageEngine, type SliceInput } from '../common/engine/stage-engine';
import { defaultSessionSettings } from '../common/engine/ort-session';
import { sequenceId } from '../common/ids';
import { Checkpoint } from '../common/model/checkpoint';
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

async function main(): Promise<void> {
  const settings = defaultSessionSettings();
  const dir = await ensureBenchModel('mistral-1b-bf16', MISTRAL_1B);
  const ckpt = await Checkpoint.open(dir);
  const c = ckpt.config;

  const load = await timed(() => StageEngine.load(ckpt, { start: 0, end: c.numLayers }, { session: settings }));
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

  const bandwidth = await measureReadBandwidth(settings);
  const H = c.hiddenSize;
  const perLayer = (c.numHeads + 2 * c.numKvHeads) * c.headDim * H + H * c.numHeads * c.headDim + 3 * H * c.intermediateSize + 2 * H;
  const weightBytesPerToken = 4 * (c.numLayers * perLayer + c.vocabSize * H + H); // float32 compute: every layer + LM head
  const boundTokensPerSecond = bandwidth.best.bytesPerSecond / weightBytesPerToken;
  const decode1 = 1000 / median(decode1Ms);
  const result = {
    model: { dir, hiddenSize: H, numLayers: c.numLayers, intermediateSize: c.intermediateSize, heads: c.numHeads, kvHeads: c.numKvHeads, vocab: c.vocabSize, storage: 'bf16', compute: 'f32' },
    threads: settings.intraOpThreads,
    loadSeconds: load.ms / 1000,
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
    prefillTokensPerSecond: PREFILL_TOKENS / (median(prefillMs) / 1000),
    decodeBatch1TokensPerSecond: decode1,
    decodeBatch16TokensPerSecond: BATCH / (median(decode16Ms) / 1000),
    readBandwidthGBps: bandwidth.best.bytesPerSecond / 1e9,
    bandwidthProbes: bandwidth.probes.map((p) => ({ name: p.name, GBps: p.bytesPerSecond / 1e9, samplesMs: p.samplesMs })),
    weightBytesPerToken,
    bandwidthBoundTokensPerSecond: boundTokensPerSecond,
    decodeFractionOfBound: decode1 / boundTokensPerSecond,
    samplesMs: { prefill: prefillMs, decode1: decode1Ms, decode16: decode16Ms },
  };
  writeFileSync(join(BENCH_DIR, 'engine.json'), JSON.stringify(result, null, 2));
  console.log(`| metric | value |
|---|---|
| load time | ${result.loadSeconds.toFixed(1)} s |
| peak RSS | ${(result.peakRssBytes / 2 ** 30).toFixed(2)} GiB |
| prefill (${PREFILL_TOKENS}-token prompt) | ${formatRate(result.prefillTokensPerSecond)} tok/s |
| decode, batch 1 | ${formatRate(decode1, 2)} tok/s (median of ${DECODE_STEPS} steps) |
| decode, batch ${BATCH} | ${formatRate(result.decodeBatch16TokensPerSecond)} tok/s aggregate |
${bandwidth.probes.map((p) => `| read bandwidth: ${p.name}, 1 GiB, ${settings.intraOpThreads} threads | ${formatRate(p.bytesPerSecond / 1e9)} GB/s |`).join('\n')}
| weight bytes read per token (f32) | ${(weightBytesPerToken / 1e9).toFixed(2)} GB |
| bandwidth bound, batch-1 decode (fastest probe) | ${formatRate(boundTokensPerSecond, 2)} tok/s |
| batch-1 decode / bound | ${(100 * result.decodeFractionOfBound).toFixed(0)} % |`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
