/**
 * A hub-format checkpoint directory: config.json plus safetensors weights, either one
 * model.safetensors or shards listed by model.safetensors.index.json. Opening reads only the
 * headers; tensors are read one at a time, on demand, and checked against the shape the model
 * config implies.
 */
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { CheckpointError } from '../errors';
import { parseModelConfig, type ModelConfig } from './config';
import { isStorageDtype, toFloat32, type TensorDtype } from './dtype';
import type { WeightSource } from './weight-source';
import { readSafetensorsHeader, readTensorBytes, type TensorEntry } from './safetensors';

export const CONFIG_FILE = 'config.json';
export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';

/**
 * One tensor's stored bytes. Quantized dtypes hold ggml blocks, row by row (see dtype.ts); every
 * other dtype holds little-endian values, row-major.
 */
export interface RawTensor {
  readonly dtype: TensorDtype;
  readonly shape: readonly number[];
  readonly bytes: Uint8Array;
}

export class Checkpoint implements WeightSource {
  private constructor(
    readonly dir: string,
    readonly config: ModelConfig,
    private readonly entries: ReadonlyMap<string, TensorEntry>,
  ) {}

  static async open(dir: string): Promise<Checkpoint> {
    const configPath = join(dir, CONFIG_FILE);
    let configText: string;
    try {
      configText = await readFile(configPath, 'utf8');
    } catch (err) {
      throw new CheckpointError(configPath, `cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`, { cause: err });
    }
    const config = parseModelConfig(configText, configPath);
    const entries = await readEntries(dir);
    return new Checkpoint(dir, config, entries);
  }

  get tensorNames(): string[] {
    return [...this.entries.keys()];
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** The header entry of a tensor; a missing tensor is an error naming the directory. */
  entry(name: string): TensorEntry {
    const entry = this.entries.get(name);
    if (entry === undefined) throw new CheckpointError(this.dir, 'missing from the checkpoint', { tensor: name });
    return entry;
  }

  /** Raw stored bytes, after checking dtype and (when given) shape. */
  async readRaw(name: string, expectedShape?: readonly number[]): Promise<RawTensor> {
    const entry = this.entry(name);
    if (!isStorageDtype(entry.dtype)) {
      throw new CheckpointError(entry.file, `unsupported dtype ${entry.dtype} (expected BF16, F16 or F32)`, { tensor: name });
    }
    if (expectedShape !== undefined && !sameShape(entry.shape, expectedShape)) {
      throw new CheckpointError(entry.file, `shape [${entry.shape.join(', ')}] does not match the expected [${expectedShape.join(', ')}]`, {
        tensor: name,
      });
    }
    return { dtype: entry.dtype, shape: entry.shape, bytes: await readTensorBytes(entry) };
  }

  /** A tensor widened to float32. */
  async readF32(name: string, expectedShape?: readonly number[]): Promise<Float32Array> {
    const raw = await this.readRaw(name, expectedShape);
    return toFloat32(raw.bytes, raw.dtype);
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

async function readEntries(dir: string): Promise<Map<string, TensorEntry>> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    throw new CheckpointError(dir, `cannot list the checkpoint directory (${(err as NodeJS.ErrnoException).code ?? String(err)})`, { cause: err });
  }
  if (names.includes(INDEX_FILE)) return readSharded(dir);
  if (names.includes(SINGLE_FILE)) return readSafetensorsHeader(join(dir, SINGLE_FILE));
  throw new CheckpointError(dir, `holds neither ${SINGLE_FILE} nor ${INDEX_FILE}`);
}

async function readSharded(dir: string): Promise<Map<string, TensorEntry>> {
  const indexPath = join(dir, INDEX_FILE);
  let index: unknown;
  try {
    index = JSON.parse(await readFile(indexPath, 'utf8'));
  } catch (err) {
    throw new CheckpointError(indexPath, `not valid JSON (${(err as Error).message})`, { cause: err });
  }
  const weightMap = (index as { weight_map?: unknown } | null)?.weight_map;
  if (weightMap === null || typeof weightMap !== 'object' || Array.isArray(weightMap)) {
    throw new CheckpointError(indexPath, 'has no "weight_map" object');
  }
  const byShard = new Map<string, string[]>();
  for (const [tensor, shard] of Object.entries(weightMap as Record<string, unknown>)) {
    if (typeof shard !== 'string' || shard.includes('/') || shard.includes('\\')) {
      throw new CheckpointError(indexPath, `weight_map entry ${JSON.stringify(shard)} is not a file name`, { tensor });
    }
    byShard.set(shard, [...(byShard.get(shard) ?? []), tensor]);
  }
  const entries = new Map<string, TensorEntry>();
  for (const [shard, tensors] of byShard) {
    const header = await readSafetensorsHeader(join(dir, shard));
    for (const tensor of tensors) {
      const entry = header.get(tensor);
      if (entry === undefined) {
        throw new CheckpointError(join(dir, shard), `listed in ${INDEX_FILE} but not in this shard`, { tensor });
      }
      entries.set(tensor, entry);
    }
  }
  return entries;
}
