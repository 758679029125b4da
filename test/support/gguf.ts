/**
 * Test helpers for GGUF files: a fixture written as GGUF into a temp dir, and copies of a GGUF
 * file broken in one specific way each (a metadata value or a tensor's type patched in place,
 * the file cut short), for the reader's error paths.
 */
import { readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { Checkpoint } from '../../common/model/checkpoint';
import { writeGguf, type GgufWeightType, type GgufWriteOptions } from '../../common/model/gguf/gguf-writer';
import { fixtureDir, tempDir, type FixtureName } from './checkpoints';

/** `dir` (default: the fixture) written as a GGUF of `type` in a temp dir removed after `t`. */
export async function fixtureGguf(t: TestContext, name: FixtureName, type: GgufWeightType, options: GgufWriteOptions & { dir?: string } = {}): Promise<string> {
  const out = join(await tempDir(t, `${name}-gguf`), `${name}-${type}.gguf`);
  await writeGguf(await Checkpoint.open(options.dir ?? fixtureDir(name)), out, type, options);
  return out;
}

/** Offset of the value of metadata key `key` (after its u32 type); the key must occur once. */
function valueOffset(bytes: Buffer, key: string): number {
  const at = bytes.indexOf(Buffer.from(key, 'utf8'));
  if (at < 8) throw new Error(`no metadata key ${key}`);
  return at + Buffer.byteLength(key) + 4;
}

/** A copy of `path` with `edit` applied to its bytes. */
export async function patchedCopy(t: TestContext, path: string, edit: (bytes: Buffer) => void): Promise<string> {
  const bytes = await readFile(path);
  edit(bytes);
  const out = join(await tempDir(t, 'gguf-bad'), 'bad.gguf');
  await writeFile(out, bytes);
  return out;
}

/** Sets a u32 metadata value in place. */
export function setU32(bytes: Buffer, key: string, value: number): void {
  bytes.writeUInt32LE(value, valueOffset(bytes, key));
}

/** Replaces a string metadata value by one of the same byte length. */
export function setSameLengthString(bytes: Buffer, key: string, value: string): void {
  const at = valueOffset(bytes, key);
  const length = Number(bytes.readBigUInt64LE(at));
  if (Buffer.byteLength(value) !== length) throw new Error(`"${value}" is not ${length} bytes`);
  bytes.write(value, at + 8, 'utf8');
}

/** Sets the ggml type id in tensor `name`'s info (its name's last occurrence is in the infos). */
export function setTensorType(bytes: Buffer, name: string, ggmlType: number): void {
  const at = bytes.lastIndexOf(Buffer.from(name, 'utf8'));
  const dimsAt = at + Buffer.byteLength(name);
  const dims = bytes.readUInt32LE(dimsAt);
  bytes.writeUInt32LE(ggmlType, dimsAt + 4 + 8 * dims);
}

/** A copy of `path` without its last `missingBytes`. */
export async function truncatedGguf(t: TestContext, path: string, keepBytes: number): Promise<string> {
  const out = await patchedCopy(t, path, () => undefined);
  await truncate(out, keepBytes);
  return out;
}
