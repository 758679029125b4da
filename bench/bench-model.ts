/**
 * The random checkpoints benchmarks run on, written once with make-model and reused while their
 * config matches (real weights cannot be downloaded here), and their GGUF files (written by the
 * writer of `bora quantize`, cached beside them).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { Checkpoint } from '../common/model/checkpoint';
import { writeGguf, type GgufWeightType } from '../common/model/gguf/gguf-writer';
import { makeModel, makeModelConfigJson, type MakeModelOptions } from '../common/model/make-model';

export const BENCH_DIR = process.env.BORA_BENCH_DIR ?? join(process.cwd(), '.bench');

/** The ~1B Mistral shape of the engine benchmark (llama.cpp was measured on the same shape). */
export const MISTRAL_1B: Omit<MakeModelOptions, 'outDir'> = Object.freeze({
  arch: 'mistral',
  hiddenSize: 2048,
  numLayers: 16,
  numHeads: 32,
  numKvHeads: 8,
  intermediateSize: 5632,
  vocabSize: 32000,
  slidingWindow: 4096,
  dtype: 'bf16',
  seed: 1,
});

/**
 * A ~1B Mixtral shape for the expert-parallel benchmark: 8 experts of 3 x 1024 x 4608 per layer,
 * top-2; 0.99 B parameters in all, of which about 0.3 B are active per token.
 */
export const MIXTRAL_1B: Omit<MakeModelOptions, 'outDir'> = Object.freeze({
  arch: 'mixtral',
  hiddenSize: 1024,
  numLayers: 8,
  numHeads: 16,
  numKvHeads: 4,
  intermediateSize: 4608,
  numExperts: 8,
  expertsPerToken: 2,
  vocabSize: 32000,
  dtype: 'bf16',
  seed: 2,
});

/** Writes the checkpoint under BENCH_DIR/name unless an identical one is already there. */
export async function ensureBenchModel(name: string, options: Omit<MakeModelOptions, 'outDir'>): Promise<string> {
  const outDir = join(BENCH_DIR, name);
  const full = { ...options, outDir };
  const configPath = join(outDir, 'config.json');
  const wanted = JSON.stringify(makeModelConfigJson(full));
  const stamp = join(outDir, '.complete');
  if (existsSync(stamp) && existsSync(configPath) && readFileSync(stamp, 'utf8') === wanted) return outDir;
  const started = Date.now();
  const made = await makeModel(full);
  const { writeFileSync } = await import('node:fs');
  writeFileSync(stamp, wanted);
  console.error(`wrote ${name}: ${(made.parameterCount / 1e9).toFixed(2)} B parameters in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return outDir;
}

/** Newest modification time of the checkpoint's files. */
function checkpointMtimeMs(dir: string): number {
  return Math.max(...readdirSync(dir).filter((f) => f === 'config.json' || f.endsWith('.safetensors')).map((f) => statSync(join(dir, f)).mtimeMs));
}

/** The checkpoint as a GGUF file of `type` (BENCH_DIR/gguf/<model>-<type>.gguf, rewritten when the checkpoint is newer). */
export async function ensureBenchGguf(ckpt: Checkpoint, type: GgufWeightType): Promise<string> {
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
