/**
 * The safetensors file format: an 8-byte little-endian header length, a JSON header mapping tensor
 * names to {dtype, shape, data_offsets}, then the raw data. The reader parses and validates the
 * header only; tensor bytes are read on demand at their offsets, so a stage touches only its own.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { CheckpointError } from '../errors';
import { DTYPE_BYTES, isStorageDtype, type StorageDtype } from './dtype';

/** Headers larger than this are refused: a corrupt length must not make us allocate gigabytes. */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export interface TensorEntry {
  readonly name: string;
  /** A supported storage dtype, or the unsupported string as found (refused when read). */
  readonly dtype: StorageDtype | string;
  readonly shape: readonly number[];
  /** Path of the .safetensors file that holds the tensor. */
  readonly file: string;
  /** Absolute byte offset of the data within the file. */
  readonly fileOffset: number;
  readonly byteLength: number;
}

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Reads and validates the header of one .safetensors file. */
export async function readSafetensorsHeader(path: string): Promise<Map<string, TensorEntry>> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    throw new CheckpointError(path, `cannot open (${(err as NodeJS.ErrnoException).code ?? String(err)})`, { cause: err });
  }
  try {
    const { size: fileBytes } = await handle.stat();
    if (fileBytes < 8) throw new CheckpointError(path, `truncated: ${fileBytes} bytes, too short for a safetensors header`);
    const lengthBuf = Buffer.alloc(8);
    await handle.read(lengthBuf, 0, 8, 0);
    const headerBytes = safetensorsHeaderLength(path, lengthBuf, fileBytes);
    const headerBuf = Buffer.alloc(headerBytes);
    await handle.read(headerBuf, 0, headerBytes, 8);
    return parseSafetensorsHeader(path, headerBuf, fileBytes);
  } finally {
    await handle.close();
  }
}

/**
 * The header length a file's first 8 bytes claim, refused before anything is allocated for it
 * when it exceeds MAX_HEADER_BYTES or the file.
 */
export function safetensorsHeaderLength(path: string, first8: Uint8Array, fileBytes: number): number {
  if (first8.byteLength < 8 || fileBytes < 8) throw new CheckpointError(path, `truncated: ${fileBytes} bytes, too short for a safetensors header`);
  const headerBytes = Number(Buffer.from(first8.buffer, first8.byteOffset, 8).readBigUInt64LE(0));
  if (headerBytes > MAX_HEADER_BYTES || 8 + headerBytes > fileBytes) {
    throw new CheckpointError(path, `header length ${headerBytes} does not fit in a file of ${fileBytes} bytes (truncated or not safetensors)`);
  }
  return headerBytes;
}

/** Parses and validates the JSON header (`header`, the bytes after the length) of a file of `fileBytes` bytes. */
export function parseSafetensorsHeader(path: string, header: Uint8Array, fileBytes: number): Map<string, TensorEntry> {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(header.buffer, header.byteOffset, header.byteLength).toString('utf8'));
  } catch (err) {
    throw new CheckpointError(path, `header is not valid JSON (${(err as Error).message})`, { cause: err });
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new CheckpointError(path, 'header must be a JSON object');
  }
  const dataStart = 8 + header.byteLength;
  const entries = new Map<string, TensorEntry>();
  for (const [name, value] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') continue;
    entries.set(name, parseEntry(path, name, value, dataStart, fileBytes));
  }
  return entries;
}

function parseEntry(path: string, name: string, value: unknown, dataStart: number, fileBytes: number): TensorEntry {
  const fail = (message: string): never => {
    throw new CheckpointError(path, message, { tensor: name });
  };
  if (value === null || typeof value !== 'object') fail('header entry is not an object');
  const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
  if (typeof dtype !== 'string') fail('missing dtype');
  // Safe integers: 1e300 is an integer to Number.isInteger, and products of such sizes are not.
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) fail('shape must be a list of non-negative integers');
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
    fail('data_offsets must be [begin, end]');
  }
  const [begin, end] = offsets as number[];
  if (end < begin) fail(`data_offsets [${begin}, ${end}] run backwards`);
  if (dataStart + end > fileBytes) {
    fail(`data ends at byte ${dataStart + end} but the file has only ${fileBytes} bytes (truncated file)`);
  }
  const dims = shape as number[];
  if (isStorageDtype(dtype)) {
    const expected = elementCount(dims) * DTYPE_BYTES[dtype];
    if (expected !== end - begin) fail(`shape [${dims.join(', ')}] of ${dtype} needs ${expected} bytes, data_offsets span ${end - begin}`);
  }
  return { name, dtype: dtype as string, shape: dims, file: path, fileOffset: dataStart + begin, byteLength: end - begin };
}

/** Reads a tensor's raw bytes from its file. */
export async function readTensorBytes(entry: TensorEntry): Promise<Uint8Array> {
  const handle = await open(entry.file, 'r');
  try {
    // Align the buffer to 4 bytes so it can be viewed as float32 without a copy.
    const buf = new Uint8Array(new ArrayBuffer(entry.byteLength));
    let done = 0;
    while (done < entry.byteLength) {
      const { bytesRead } = await handle.read(buf, done, entry.byteLength - done, entry.fileOffset + done);
      if (bytesRead === 0) {
        throw new CheckpointError(entry.file, `file ended after ${done} of ${entry.byteLength} bytes (truncated)`, { tensor: entry.name });
      }
      done += bytesRead;
    }
    return buf;
  } finally {
    await handle.close();
  }
}
