/**
 * npm run bench:quantize — how fast `bora quantize` writes a GGUF file: the benchmark model
 * (~0.85 B parameters, bf16, 1.7 GB of safetensors) to Q8_0, Q4_0 and Q4_K_M with the writer the
 * command runs (common/model/gguf/gguf-writer.ts, native quantizers on every core), each type in
 * PASSES passes, the types interleaved. Per type: MB/s of input (the checkpoint's stored bytes)
 * over wall-clock time, and over the process's CPU time (user + system, all threads), which a
 * shared machine disturbs less; the target is >= 200 MB/s wall clock on this machine.
 *
 * Environment: BORA_QUANTIZE_TYPES (default Q8_0,Q4_0,Q4_K_M), BORA_QUANTIZE_PASSES (default 3),
 * BORA_QUANTIZE_MODEL (a checkpoint dir; default the benchmark model). The files go to a
 * temporary directory, removed at the end. Prints a markdown table and writes .bench/quantize.json.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Checkpoint } from '../common/model/checkpoint';
import { isGgufWeightType, writeGguf, type GgufWeightType } from '../common/model/gguf/gguf-writer';
import { BENCH_DIR, MISTRAL_1B, ensureBenchModel } from './bench-model';
import { formatRate, median } from './stats';

interface QuantizePass {
  readonly wallSeconds: number;
  readonly cpuSeconds: number;
  readonly sourceBytes: number;
  readonly fileBytes: number;
  readonly loadAverage: number;
}

async function quantizeOnce(ckpt: Checkpoint, type: GgufWeightType, out: string): Promise<QuantizePass> {
  const loadAverage = loadavg()[0];
  const cpu = process.cpuUsage();
  const started = performance.now();
  const written = await writeGguf(ckpt, out, type, { name: 'bench' });
  const wallSeconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  rmSync(out, { force: true });
  return { wallSeconds, cpuSeconds: (used.user + used.system) / 1e6, sourceBytes: written.sourceBytes, fileBytes: written.fileBytes, loadAverage };
}

async function main(): Promise<void> {
  const types = (process.env.BORA_QUANTIZE_TYPES ?? 'Q8_0,Q4_0,Q4_K_M').split(',').map((t) => t.trim().toUpperCase());
  for (const t of types) if (!isGgufWeightType(t)) throw new Error(`BORA_QUANTIZE_TYPES: unknown type ${t}`);
  const passes = Number(process.env.BORA_QUANTIZE_PASSES ?? 3);
  const modelDir = process.env.BORA_QUANTIZE_MODEL ?? (await ensureBenchModel('mistral-1b-bf16', MISTRAL_1B));
  const ckpt = await Checkpoint.open(modelDir);
  const dir = mkdtempSync(join(tmpdir(), 'bora-quantize-'));
  const runs = new Map<string, QuantizePass[]>(types.map((t) => [t, []]));
  try {
    for (let pass = 0; pass < passes; pass++) {
      for (const type of types) runs.get(type)!.push(await quantizeOnce(ckpt, type as GgufWeightType, join(dir, `${type}.gguf`)));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const mbps = (p: QuantizePass, seconds: number): number => p.sourceBytes / 1e6 / seconds;
  const result = { model: modelDir, passes, runs: Object.fromEntries(runs) };
  writeFileSync(join(BENCH_DIR, 'quantize.json'), JSON.stringify(result, null, 2));
  console.log(`| type | input | output | wall s, median | MB/s of input, wall clock (median; passes) | MB/s of input per CPU second (median) | load average at start |
|---|---|---|---|---|---|---|
${[...runs]
  .map(([type, ps]) => {
    const wall = ps.map((p) => mbps(p, p.wallSeconds));
    return `| ${type} | ${(ps[0].sourceBytes / 1e9).toFixed(2)} GB | ${(ps[0].fileBytes / 1e9).toFixed(2)} GB | ${median(ps.map((p) => p.wallSeconds)).toFixed(1)} | **${formatRate(median(wall), 0)}** (${wall.map((v) => v.toFixed(0)).join(', ')}) | ${formatRate(median(ps.map((p) => mbps(p, p.cpuSeconds))), 0)} | ${ps.map((p) => p.loadAverage.toFixed(1)).join(', ')} |`;
  })
  .join('\n')}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
