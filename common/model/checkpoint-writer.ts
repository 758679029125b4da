/**
 * Writes a hub-format checkpoint directory: config.json plus either one model.safetensors or
 * shards `model-0000i-of-0000N.safetensors` listed by model.safetensors.index.json.
 *
 * Every tensor's name, dtype and shape are known up front (a safetensors header precedes the
 * data), but its bytes may be produced lazily, one tensor at a time and in chunks, so a
 * checkpoint of several GB is written with only a chunk or two in memory. Shard files are
 * written under a `.partial` name and renamed once complete; the index and config.json come last,
 * so a directory that Checkpoint.open accepts was written to the end.
 */
import { mkdir, open, readdir, rename, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidArgumentError } from '../errors';
import { CONFIG_FILE, INDEX_FILE, SINGLE_FILE } from './checkpoint';
import { DTYPE_BYTES, type StorageDtype } from './dtype';
import { elementCount } from './safetensors';

/** The dtypes a checkpoint can be written in, as options name them. */
export type WeightDtype = 'bf16' | 'f16' | 'f32';

export const WEIGHT_DTYPES: readonly WeightDtype[] = Object.freeze(['bf16', 'f16', 'f32']);

export const STORAGE_DTYPE: Readonly<Record<WeightDtype, StorageDtype>> = Object.freeze({ bf16: 'BF16', f16: 'F16', f32: 'F32' });

/** config.json's torch_dtype for each. */
export const TORCH_DTYPE: Readonly<Record<WeightDtype, string>> = Object.freeze({ bf16: 'bfloat16', f16: 'float16', f32: 'float32' });

export function isWeightDtype(value: unknown): value is WeightDtype {
  return value === 'bf16' || value === 'f16' || value === 'f32';
}

/** Bytes of one tensor: all at once, or as chunks whose lengths add up to the tensor's size. */
export type TensorBytes = Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>;

export interface TensorLayout {
  readonly name: string;
  readonly dtype: StorageDtype;
  readonly shape: readonly number[];
}

export interface TensorSource extends TensorLayout {
  /**
   * The tensor's little-endian bytes, or a callback that produces them; the callback is called
   * once, when the writer reaches this tensor, and each chunk is written out before the next is
   * pulled (a producer may therefore hand out fresh buffers without holding the whole tensor).
   */
  readonly data: Uint8Array | (() => TensorBytes | Promise<TensorBytes>);
}

export interface WriteCheckpointOptions {
  /** The content of config.json, written as given. */
  readonly config: Readonly<Record<string, unknown>>;
  /**
   * Largest data section of one shard, in bytes. Tensors are never split: a tensor larger than
   * this gets a shard of its own. Absent, or when everything fits in one shard, the checkpoint is
   * a single model.safetensors (as the Hugging Face writer does).
   */
  readonly maxShardBytes?: number;
}

export interface WrittenCheckpoint {
  /** Weight files (shards or model.safetensors), then the index if any, then config.json. */
  readonly files: readonly string[];
  /** Sum of all tensors' data bytes: the index's metadata.total_size. */
  readonly tensorBytes: number;
  /** Bytes of the weight files on disk, headers included. */
  readonly fileBytes: number;
}

/** One weight file and the tensors it holds, in file order. */
export interface ShardPlan<T extends TensorLayout = TensorLayout> {
  readonly file: string;
  readonly tensors: readonly T[];
  readonly dataBytes: number;
}

export function tensorByteLength(t: TensorLayout): number {
  return elementCount(t.shape) * DTYPE_BYTES[t.dtype];
}

export function shardFileName(index: number, count: number): string {
  const pad = (n: number): string => String(n).padStart(5, '0');
  return `model-${pad(index + 1)}-of-${pad(count)}.safetensors`;
}

/** Pure: splits tensors, in the given order, into files of at most maxShardBytes of data each. */
export function planShards<T extends TensorLayout>(tensors: readonly T[], maxShardBytes?: number): ShardPlan<T>[] {
  if (maxShardBytes !== undefined && (!Number.isSafeInteger(maxShardBytes) || maxShardBytes <= 0)) {
    throw new InvalidArgumentError(`maxShardBytes must be a positive integer, got ${maxShardBytes}`);
  }
  const groups: { tensors: T[]; dataBytes: number }[] = [];
  let current: { tensors: T[]; dataBytes: number } | undefined;
  for (const t of tensors) {
    const bytes = tensorByteLength(t);
    if (current === undefined || (maxShardBytes !== undefined && current.tensors.length > 0 && current.dataBytes + bytes > maxShardBytes)) {
      current = { tensors: [], dataBytes: 0 };
      groups.push(current);
    }
    current.tensors.push(t);
    current.dataBytes += bytes;
  }
  if (groups.length <= 1) return [{ file: SINGLE_FILE, tensors: groups[0]?.tensors ?? [], dataBytes: groups[0]?.dataBytes ?? 0 }];
  return groups.map((g, i) => ({ file: shardFileName(i, groups.length), tensors: g.tensors, dataBytes: g.dataBytes }));
}

/**
 * The safetensors header for tensors laid out back to back in the given order, padded with
 * spaces so the data section starts 8-byte aligned. (Same layout as encodeSafetensorsHeader in
 * safetensors.ts, which needs the data in hand; here only the layout is known.)
 */
export function encodeHeaderForLayout(tensors: readonly TensorLayout[], metadata: Readonly<Record<string, string>> = { format: 'pt' }): Buffer {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const t of tensors) {
    if (t.name === '__metadata__' || Object.hasOwn(header, t.name)) {
      throw new InvalidArgumentError(`tensor name ${JSON.stringify(t.name)} is reserved or repeated`);
    }
    const bytes = tensorByteLength(t);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const body = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(8 + body.length);
  out.writeBigUInt64LE(BigInt(body.length), 0);
  body.copy(out, 8);
  return out;
}

function isWeightFile(name: string): boolean {
  return name === SINGLE_FILE || name === INDEX_FILE || /^model-\d+-of-\d+\.safetensors(\.partial)?$/.test(name);
}

/** Refuses a directory that already holds weights: stale shards would mix with the new ones. */
async function prepareDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const stale = (await readdir(dir)).filter(isWeightFile);
  if (stale.length > 0) {
    throw new InvalidArgumentError(`${dir} already holds checkpoint weights (${stale.join(', ')}); write to an empty directory`);
  }
}

function validateLayout(t: TensorLayout): void {
  if (typeof t.name !== 'string' || t.name.length === 0) throw new InvalidArgumentError('a tensor has an empty name');
  if (DTYPE_BYTES[t.dtype] === undefined) throw new InvalidArgumentError(`tensor ${t.name}: unsupported dtype ${String(t.dtype)}`);
  if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new InvalidArgumentError(`tensor ${t.name}: shape [${t.shape.join(', ')}] must hold non-negative integers`);
  }
}

async function writeFully(handle: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.byteLength) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.byteLength - done, position + done);
    done += bytesWritten;
  }
}

async function* chunksOf(source: TensorSource): AsyncIterable<Uint8Array> {
  const produced = typeof source.data === 'function' ? await source.data() : source.data;
  if (produced instanceof Uint8Array) yield produced;
  else yield* produced;
}

/**
 * Streams one tensor's bytes to `position`. The next chunk is produced while the previous one is
 * being written, so generation and disk I/O overlap. Returns the bytes written.
 */
async function writeTensor(handle: FileHandle, source: TensorSource, position: number): Promise<number> {
  const expected = tensorByteLength(source);
  let written = 0;
  let tooLong = false;
  let pending: Promise<void> | undefined;
  try {
    for await (const chunk of chunksOf(source)) {
      if (pending !== undefined) await pending;
      pending = undefined;
      if (written + chunk.byteLength > expected) {
        tooLong = true;
        break;
      }
      pending = writeFully(handle, chunk, position + written);
      written += chunk.byteLength;
    }
    if (pending !== undefined) await pending;
    pending = undefined;
  } finally {
    // A producer that threw must not leave a write in flight on a handle about to be closed.
    if (pending !== undefined) await pending.catch(() => undefined);
  }
  if (tooLong || written !== expected) {
    throw new InvalidArgumentError(
      `tensor ${source.name}: shape [${source.shape.join(', ')}] of ${source.dtype} needs ${expected} bytes, the data has ${tooLong ? 'more' : written}`,
    );
  }
  return written;
}

async function writeShard(dir: string, shard: ShardPlan<TensorSource>): Promise<number> {
  const header = encodeHeaderForLayout(shard.tensors);
  const finalPath = join(dir, shard.file);
  const partialPath = `${finalPath}.partial`;
  const handle = await open(partialPath, 'w');
  let position = 0;
  try {
    await writeFully(handle, header, 0);
    position = header.byteLength;
    for (const t of shard.tensors) {
      position += await writeTensor(handle, t, position);
    }
  } catch (err) {
    await handle.close();
    await rm(partialPath, { force: true });
    throw err;
  }
  await handle.close();
  await rename(partialPath, finalPath);
  return position;
}

/** Writes `tensors` (header data eager, bytes possibly lazy) and config.json into `dir`. */
export async function writeCheckpoint(dir: string, tensors: Iterable<TensorSource>, options: WriteCheckpointOptions): Promise<WrittenCheckpoint> {
  const sources = new Map<string, TensorSource>();
  for (const t of tensors) {
    validateLayout(t);
    if (sources.has(t.name)) throw new InvalidArgumentError(`tensor ${t.name} is given twice`);
    sources.set(t.name, t);
  }
  const shards = planShards([...sources.values()], options.maxShardBytes);
  await prepareDir(dir);

  const files: string[] = [];
  let fileBytes = 0;
  for (const shard of shards) {
    fileBytes += await writeShard(dir, shard);
    files.push(shard.file);
  }
  const tensorBytes = shards.reduce((sum, s) => sum + s.dataBytes, 0);
  if (shards.length > 1) {
    const weightMap: Record<string, string> = {};
    for (const shard of shards) for (const t of shard.tensors) weightMap[t.name] = shard.file;
    await writeFile(join(dir, INDEX_FILE), `${JSON.stringify({ metadata: { total_size: tensorBytes }, weight_map: weightMap }, null, 2)}\n`);
    files.push(INDEX_FILE);
  }
  await writeFile(join(dir, CONFIG_FILE), `${JSON.stringify(options.config, null, 2)}\n`);
  files.push(CONFIG_FILE);
  return { files, tensorBytes, fileBytes };
}
