/**
 * SHA-256 of a model version's weights: describing a version for the registry (every weight file
 * and every tensor as stored), and checking a local copy against a record.
 *
 * Files are hashed as a stream of 1 MiB reads, so the event loop is free between chunks (about a
 * millisecond of hashing each): a worker verifying 14 GB keeps its etcd lease alive. The cost is
 * in docs/benchmarks.md ("Weight digests"; `npm run bench:digests`).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { CheckpointError } from '../errors';
import { Checkpoint, INDEX_FILE, SINGLE_FILE } from '../model/checkpoint';
import { isGgufPath, openModel, storedTensorBytes, type ModelCheckpoint } from '../model/open-model';
import type { ModelRef } from './model-ref';
import type { ModelVersionRecord, WeightFileDigest } from './version-record';

/** Bytes read per chunk while hashing a file. */
export const HASH_CHUNK_BYTES = 1024 * 1024;

/** Every digest-mismatch message contains this, so that the error can be recognised after it
 * crossed a thread boundary (where it arrives as a CheckpointError: errors.ts). */
export const DIGEST_MISMATCH = 'SHA-256 does not match the registered version';

export interface FileDigest {
  readonly sizeBytes: number;
  readonly sha256: string;
}

/** Streams `path` through SHA-256 (1 MiB reads; the event loop stays free). */
export function hashFile(path: string): Promise<FileDigest> {
  return new Promise((resolvePromise, reject) => {
    const hash = createHash('sha256');
    let sizeBytes = 0;
    const stream = createReadStream(path, { highWaterMark: HASH_CHUNK_BYTES });
    stream.on('data', (chunk) => {
      hash.update(chunk);
      sizeBytes += chunk.length;
    });
    stream.on('error', (err: NodeJS.ErrnoException) => reject(new CheckpointError(path, `cannot read (${err.code ?? err.message})`, { cause: err })));
    stream.on('end', () => resolvePromise({ sizeBytes, sha256: hash.digest('hex') }));
  });
}

/** The weight files of a hub directory (the shards its index lists, or model.safetensors), sorted. */
export async function hubWeightFiles(dir: string): Promise<string[]> {
  let indexText: string | undefined;
  try {
    indexText = await readFile(join(dir, INDEX_FILE), 'utf8');
  } catch {
    return [SINGLE_FILE];
  }
  let weightMap: unknown;
  try {
    weightMap = (JSON.parse(indexText) as { weight_map?: unknown } | null)?.weight_map;
  } catch (err) {
    throw new CheckpointError(join(dir, INDEX_FILE), `not valid JSON (${(err as Error).message})`, { cause: err });
  }
  if (weightMap === null || typeof weightMap !== 'object') throw new CheckpointError(join(dir, INDEX_FILE), 'has no "weight_map" object');
  return [...new Set(Object.values(weightMap as Record<string, string>))].sort();
}

/** Where each weight file of a version lies at `path` (a hub directory or the GGUF file). */
function weightFilePaths(path: string, files: readonly string[]): string[] {
  return isGgufPath(path) ? [path] : files.map((f) => join(path, f));
}

/** The SHA-256 of one tensor's stored bytes, as the weight service sends them (weight-service.ts). */
export function tensorDigest(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * Everything the registry records about the model at `path`: hashes every weight file (streamed)
 * and every tensor (read one at a time). For `bora models add`, on the machine holding the files.
 */
export async function describeModelVersion(ref: ModelRef, path: string, now: Date = new Date()): Promise<ModelVersionRecord> {
  const absolute = resolve(path);
  const ckpt: ModelCheckpoint = await openModel(absolute);
  const gguf = !(ckpt instanceof Checkpoint);
  const names = gguf ? [basename(absolute)] : await hubWeightFiles(absolute);
  const files: WeightFileDigest[] = [];
  const paths = weightFilePaths(absolute, names);
  for (let i = 0; i < names.length; i++) files.push({ file: names[i], ...(await hashFile(paths[i])) });
  const tensors: Record<string, string> = {};
  let weightBytes = 0;
  for (const name of [...ckpt.tensorNames].sort()) {
    tensors[name] = tensorDigest((await ckpt.readRaw(name)).bytes);
    weightBytes += storedTensorBytes(ckpt, name);
  }
  const c = ckpt.config;
  return {
    name: ref.name,
    version: ref.version,
    format: gguf ? 'gguf' : 'hub',
    path: absolute,
    files,
    tensors,
    shape: { modelType: c.modelType, numLayers: c.numLayers, hiddenSize: c.hiddenSize, vocabSize: c.vocabSize, numExperts: c.numExperts, weightBytes },
    addedAt: now.toISOString(),
  };
}

/** A weight file or tensor whose digest is not the registered one. */
export interface DigestMismatch {
  /** The file's path here, or `tensor NAME` for a tensor fetched from the coordinator. */
  readonly file: string;
  readonly expectedSha256: string;
  readonly actualSha256: string;
}

export function digestMismatchError(m: DigestMismatch, ref: string, tensor?: string): CheckpointError {
  return new CheckpointError(m.file, `${DIGEST_MISMATCH} ${ref} (registered ${m.expectedSha256}, found ${m.actualSha256})`, { tensor });
}

/**
 * Hashes the local copy at `path` (hub directory or GGUF file) and compares every weight file
 * with `record`. Resolves with the first mismatch, or undefined when every file matches; a
 * missing or unreadable file throws CheckpointError naming it.
 */
export async function findDigestMismatch(path: string, record: ModelVersionRecord): Promise<DigestMismatch | undefined> {
  const paths = weightFilePaths(path, record.files.map((f) => f.file));
  if (isGgufPath(path) && record.format !== 'gguf') throw new CheckpointError(path, `is a GGUF file, but the registered version is a hub directory`);
  for (let i = 0; i < record.files.length; i++) {
    const expected = record.files[i];
    const info = await stat(paths[i]).catch((err: NodeJS.ErrnoException) => {
      throw new CheckpointError(paths[i], `cannot read (${err.code ?? err.message})`, { cause: err });
    });
    // A size that differs decides without reading the file.
    const actual = info.size === expected.sizeBytes ? await hashFile(paths[i]) : { sha256: `(size ${info.size} bytes, registered ${expected.sizeBytes})`, sizeBytes: info.size };
    if (actual.sha256 !== expected.sha256) return { file: paths[i], expectedSha256: expected.sha256, actualSha256: actual.sha256 };
  }
  return undefined;
}

/**
 * The mismatch a digest-mismatch error describes (after it crossed a thread boundary as a
 * CheckpointError with its file and tensor), or undefined when the error is not one.
 */
export function digestMismatchOf(err: unknown): (DigestMismatch & { readonly tensor?: string }) | undefined {
  if (!(err instanceof CheckpointError) || !err.message.includes(DIGEST_MISMATCH)) return undefined;
  const found = /\(registered ([0-9a-f]{64}), found ([^)]*)\)/.exec(err.message);
  if (found === null) return undefined;
  return { file: err.tensor === undefined ? err.file : `tensor ${err.tensor} (from ${err.file})`, expectedSha256: found[1], actualSha256: found[2], ...(err.tensor === undefined ? {} : { tensor: err.tensor }) };
}
