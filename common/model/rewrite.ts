/**
 * Re-encodes an existing checkpoint in another dtype and/or another file layout (one file or
 * shards): the same tensors under the same names and shapes, values converted through float32
 * (widening is exact; narrowing rounds to nearest even). config.json is copied with torch_dtype
 * updated, and tokenizer files are copied as they are. Tensors are read, converted and written
 * one at a time, so memory stays at about one tensor whatever the checkpoint size.
 */
import { copyFile, readFile, readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { CheckpointError, InvalidArgumentError } from '../errors';
import { Checkpoint, CONFIG_FILE, type RawTensor } from './checkpoint';
import {
  STORAGE_DTYPE,
  TORCH_DTYPE,
  WEIGHT_DTYPES,
  isWeightDtype,
  writeCheckpoint,
  type TensorSource,
  type WeightDtype,
  type WrittenCheckpoint,
} from './checkpoint-writer';
import { fromFloat32, isStorageDtype, toFloat32, type StorageDtype } from './dtype';

export interface RewriteOptions {
  readonly dtype: WeightDtype;
  /** Absent: one model.safetensors. See WriteCheckpointOptions.maxShardBytes. */
  readonly maxShardBytes?: number;
}

/** Files that travel with a model but are not weights: tokenizers and generation defaults. */
const COMPANION_FILE = /^(tokenizer.*|tekken\.json|special_tokens_map\.json|added_tokens\.json|vocab\.json|merges\.txt|generation_config\.json)$/;

function convert(raw: RawTensor, target: StorageDtype): Uint8Array {
  if (raw.dtype === target) return raw.bytes;
  return fromFloat32(toFloat32(raw.bytes, raw.dtype), target);
}

export async function rewriteCheckpoint(srcDir: string, dstDir: string, options: RewriteOptions): Promise<WrittenCheckpoint> {
  if (!isWeightDtype(options.dtype)) {
    throw new InvalidArgumentError(`rewriteCheckpoint: dtype must be one of ${WEIGHT_DTYPES.join(', ')}, got ${JSON.stringify(options.dtype)}`);
  }
  if (resolve(srcDir) === resolve(dstDir)) throw new InvalidArgumentError(`rewriteCheckpoint: ${srcDir} cannot be rewritten in place`);
  const checkpoint = await Checkpoint.open(srcDir);
  const target = STORAGE_DTYPE[options.dtype];

  // Refuse an unreadable dtype before writing anything, rather than half way through.
  const sources: TensorSource[] = checkpoint.tensorNames.map((name) => {
    const entry = checkpoint.entry(name);
    if (!isStorageDtype(entry.dtype)) {
      throw new CheckpointError(entry.file, `unsupported dtype ${entry.dtype} (expected BF16, F16 or F32)`, { tensor: name });
    }
    return { name, dtype: target, shape: entry.shape, data: async () => convert(await checkpoint.readRaw(name), target) };
  });

  // Checkpoint.open has parsed config.json already; keep every key, change only torch_dtype.
  const config = JSON.parse(await readFile(join(srcDir, CONFIG_FILE), 'utf8')) as Record<string, unknown>;
  config.torch_dtype = TORCH_DTYPE[options.dtype];

  const written = await writeCheckpoint(dstDir, sources, { config, maxShardBytes: options.maxShardBytes });
  const companions = (await readdir(srcDir)).filter((name) => COMPANION_FILE.test(name)).sort();
  for (const name of companions) await copyFile(join(srcDir, name), join(dstDir, name));
  return { ...written, files: [...written.files, ...companions] };
}
