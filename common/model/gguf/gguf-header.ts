/**
 * Reads a GGUF file's header (metadata and tensor infos) with @huggingface/gguf, which reads the
 * file in chunks from the start and stops at the tensor data. Checks what the library leaves to
 * its caller: the version (2 and 3, as llama.cpp reads), that each tensor's data lies inside the
 * file, and typed access to metadata values. Every failure is a CheckpointError naming the file
 * (and the tensor or key where there is one).
 */
import { open, stat } from 'node:fs/promises';
import { gguf } from '@huggingface/gguf';
import { CheckpointError } from '../../errors';

export const GGUF_MAGIC = 'GGUF';
export const SUPPORTED_GGUF_VERSIONS: readonly number[] = [2, 3];

export type MetaValue = number | bigint | string | boolean | MetaValue[];

/** One tensor as the header describes it; dims innermost-first, as ggml counts them. */
export interface GgufTensorInfo {
  readonly name: string;
  readonly ne: readonly number[];
  readonly ggmlType: number;
  /** Absolute position of the tensor's first byte in the file. */
  readonly fileOffsetBytes: number;
}

export interface GgufHeader {
  readonly path: string;
  readonly version: number;
  readonly fileBytes: number;
  readonly metadata: ReadonlyMap<string, MetaValue>;
  readonly tensors: ReadonlyMap<string, GgufTensorInfo>;
}

/** Parses the header of the GGUF file at `path`. */
export async function readGgufHeader(path: string): Promise<GgufHeader> {
  const { fileBytes, version } = await readPreamble(path);
  let parsed: Awaited<ReturnType<typeof gguf>>;
  try {
    parsed = await gguf(path, { allowLocalFile: true });
  } catch (err) {
    throw new CheckpointError(path, `not a readable GGUF header (${headerFailure(err)})`, { cause: err });
  }
  const metadata = new Map<string, MetaValue>();
  for (const [key, value] of Object.entries(parsed.metadata)) metadata.set(key, value as MetaValue);
  const dataStart = Number(parsed.tensorDataOffset);
  // The library reads past the end of a short file as zeros: a header that ends beyond the file
  // is a truncated one, whatever it parsed to.
  if (dataStart > fileBytes) throw new CheckpointError(path, `truncated: the header runs to byte ${dataStart}, the file has ${fileBytes}`);
  const tensors = new Map<string, GgufTensorInfo>();
  for (const info of parsed.tensorInfos) {
    if (tensors.has(info.name)) throw new CheckpointError(path, 'appears twice in the tensor infos', { tensor: info.name });
    tensors.set(info.name, {
      name: info.name,
      ne: info.shape.map((d) => Number(d)),
      ggmlType: info.dtype,
      fileOffsetBytes: dataStart + Number(info.offset),
    });
  }
  return { path, version, fileBytes, metadata, tensors };
}

/** Magic and version, read before the library so that a wrong version gets its own message. */
async function readPreamble(path: string): Promise<{ fileBytes: number; version: number }> {
  let fileBytes: number;
  const head = Buffer.alloc(8);
  let read = 0;
  try {
    fileBytes = (await stat(path)).size;
    const handle = await open(path, 'r');
    try {
      read = (await handle.read(head, 0, 8, 0)).bytesRead;
    } finally {
      await handle.close();
    }
  } catch (err) {
    throw new CheckpointError(path, `cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`, { cause: err });
  }
  if (read < 8) throw new CheckpointError(path, `truncated: ${fileBytes} bytes cannot hold a GGUF header`);
  if (head.toString('latin1', 0, 4) !== GGUF_MAGIC) throw new CheckpointError(path, 'not a GGUF file (no "GGUF" magic at its start)');
  const version = head.readUInt32LE(4);
  if (!SUPPORTED_GGUF_VERSIONS.includes(version)) {
    throw new CheckpointError(path, `GGUF version ${version} is not supported (Bora reads versions ${SUPPORTED_GGUF_VERSIONS.join(' and ')})`);
  }
  return { fileBytes, version };
}

/** The library's message, with a read past the end named for what it is. */
function headerFailure(err: unknown): string {
  if (err instanceof RangeError || /chunk fetches/.test(String((err as Error)?.message))) return 'truncated: the header runs past the end of the file';
  return err instanceof Error ? err.message : String(err);
}

/** Typed metadata access, with errors naming the file and the key. */
export class GgufMetadata {
  constructor(
    readonly path: string,
    private readonly values: ReadonlyMap<string, MetaValue>,
  ) {}

  has(key: string): boolean {
    return this.values.has(key);
  }

  string(key: string): string;
  string(key: string, fallback: string): string;
  string(key: string, fallback: string | undefined): string | undefined;
  string(key: string, ...fallback: [string | undefined] | []): string | undefined {
    const value = this.values.get(key);
    if (value === undefined && fallback.length > 0) return fallback[0];
    if (typeof value !== 'string') throw this.bad(key, 'a string', value);
    return value;
  }

  /** A non-negative integer of any width. */
  integer(key: string): number;
  integer(key: string, fallback: number): number;
  integer(key: string, fallback: number | undefined): number | undefined;
  integer(key: string, ...fallback: [number | undefined] | []): number | undefined {
    const value = this.values.get(key);
    if (value === undefined && fallback.length > 0) return fallback[0];
    const n = typeof value === 'bigint' ? Number(value) : value;
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw this.bad(key, 'a non-negative integer', value);
    return n;
  }

  number(key: string): number;
  number(key: string, fallback: number): number;
  number(key: string, fallback: number | undefined): number | undefined;
  number(key: string, ...fallback: [number | undefined] | []): number | undefined {
    const value = this.values.get(key);
    if (value === undefined && fallback.length > 0) return fallback[0];
    const n = typeof value === 'bigint' ? Number(value) : value;
    if (typeof n !== 'number' || !Number.isFinite(n)) throw this.bad(key, 'a number', value);
    return n;
  }

  boolean(key: string, fallback: boolean): boolean {
    const value = this.values.get(key);
    if (value === undefined) return fallback;
    if (typeof value !== 'boolean') throw this.bad(key, 'a boolean', value);
    return value;
  }

  strings(key: string): string[] {
    const value = this.values.get(key);
    if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) throw this.bad(key, 'an array of strings', value);
    return value as string[];
  }

  numbers(key: string): number[] | undefined {
    const value = this.values.get(key);
    if (value === undefined) return undefined;
    if (!Array.isArray(value) || value.some((v) => typeof v !== 'number')) throw this.bad(key, 'an array of numbers', value);
    return value as number[];
  }

  private bad(key: string, expected: string, value: unknown): CheckpointError {
    const shown = value === undefined ? 'missing' : Array.isArray(value) ? `an array of ${value.length}` : `${JSON.stringify(typeof value === 'bigint' ? String(value) : value)}`;
    return new CheckpointError(this.path, `metadata "${key}" must be ${expected}, got ${shown}`);
  }
}
