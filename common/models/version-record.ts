/**
 * A registered model version as the registry stores it (etcd, `models/versions/NAME@VERSION`):
 * where its files are, the SHA-256 of every weight file (what a worker with its own copy
 * verifies) and of every tensor as stored (what a worker fetching tensors from the coordinator's
 * weight service verifies), and its size and shape.
 *
 * `decodeVersionRecord` checks every field, so a record read back from etcd (which anyone with
 * write access could have edited) is either complete and well-formed or refused.
 */
import { InvalidArgumentError } from '../errors';
import { formatModelRef, parseModelRef, type ModelRef } from './model-ref';

export type ModelFormat = 'hub' | 'gguf';

/** One weight file: a .safetensors shard of a hub directory, or the GGUF file itself. */
export interface WeightFileDigest {
  /** Relative to the version's path for a hub directory; the file's base name for GGUF. */
  readonly file: string;
  readonly sizeBytes: number;
  /** Lower-case hex. */
  readonly sha256: string;
}

/** The config summary: what placement and an operator need to know about the model. */
export interface ModelShape {
  readonly modelType: string;
  readonly numLayers: number;
  readonly hiddenSize: number;
  readonly vocabSize: number;
  readonly numExperts: number;
  /** Bytes of every tensor as stored (quantized tensors at their quantized size). */
  readonly weightBytes: number;
}

export interface ModelVersionRecord {
  readonly name: string;
  readonly version: string;
  readonly format: ModelFormat;
  /** Absolute path of the hub directory or GGUF file, on the machine that registered it. */
  readonly path: string;
  readonly files: readonly WeightFileDigest[];
  /** Tensor name -> SHA-256 (hex) of its stored bytes, as the weight service streams them. */
  readonly tensors: Readonly<Record<string, string>>;
  readonly shape: ModelShape;
  /** ISO 8601. */
  readonly addedAt: string;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

function fail(message: string): never {
  throw new InvalidArgumentError(`invalid model version record: ${message}`);
}

function isObject(raw: unknown): raw is Record<string, unknown> {
  return raw !== null && typeof raw === 'object' && !Array.isArray(raw);
}

function count(raw: unknown, what: string, min = 0): number {
  if (typeof raw !== 'number' || !Number.isSafeInteger(raw) || raw < min) fail(`${what} must be an integer >= ${min}, got ${JSON.stringify(raw)}`);
  return raw;
}

function text(raw: unknown, what: string): string {
  if (typeof raw !== 'string' || raw.length === 0) fail(`${what} must be a non-empty string`);
  return raw;
}

function digest(raw: unknown, what: string): string {
  if (typeof raw !== 'string' || !SHA256_HEX.test(raw)) fail(`${what} must be 64 lower-case hex digits`);
  return raw;
}

function checkKeys(raw: Record<string, unknown>, allowed: readonly string[], what: string): void {
  for (const key of Object.keys(raw)) if (!allowed.includes(key)) fail(`${what} has unknown field "${key}"`);
}

function decodeFile(raw: unknown, i: number): WeightFileDigest {
  if (!isObject(raw)) fail(`files[${i}] must be an object`);
  checkKeys(raw, ['file', 'sizeBytes', 'sha256'], `files[${i}]`);
  const file = text(raw.file, `files[${i}].file`);
  if (file.includes('/') || file.includes('\\') || file === '.' || file === '..') fail(`files[${i}].file ${JSON.stringify(file)} must be a file name, not a path`);
  return { file, sizeBytes: count(raw.sizeBytes, `files[${i}].sizeBytes`), sha256: digest(raw.sha256, `files[${i}].sha256`) };
}

function decodeShape(raw: unknown): ModelShape {
  if (!isObject(raw)) fail('"shape" must be an object');
  checkKeys(raw, ['modelType', 'numLayers', 'hiddenSize', 'vocabSize', 'numExperts', 'weightBytes'], 'shape');
  return {
    modelType: text(raw.modelType, 'shape.modelType'),
    numLayers: count(raw.numLayers, 'shape.numLayers', 1),
    hiddenSize: count(raw.hiddenSize, 'shape.hiddenSize', 1),
    vocabSize: count(raw.vocabSize, 'shape.vocabSize', 1),
    numExperts: count(raw.numExperts, 'shape.numExperts'),
    weightBytes: count(raw.weightBytes, 'shape.weightBytes'),
  };
}

/** Checks a decoded JSON value field by field; returns a frozen record. */
export function validateVersionRecord(raw: unknown): ModelVersionRecord {
  if (!isObject(raw)) fail('must be a JSON object');
  checkKeys(raw, ['name', 'version', 'format', 'path', 'files', 'tensors', 'shape', 'addedAt'], 'record');
  const ref = parseModelRef(`${text(raw.name, '"name"')}@${text(raw.version, '"version"')}`);
  if (raw.format !== 'hub' && raw.format !== 'gguf') fail(`"format" must be "hub" or "gguf", got ${JSON.stringify(raw.format)}`);
  const path = text(raw.path, '"path"');
  if (!path.startsWith('/')) fail(`"path" must be absolute, got ${JSON.stringify(path)}`);
  if (!Array.isArray(raw.files) || raw.files.length === 0) fail('"files" must list at least one weight file');
  const files = raw.files.map(decodeFile);
  const names = new Set(files.map((f) => f.file));
  if (names.size !== files.length) fail('"files" lists a file twice');
  if (raw.format === 'gguf' && files.length !== 1) fail(`a GGUF version has exactly one weight file, not ${files.length}`);
  if (!isObject(raw.tensors) || Object.keys(raw.tensors).length === 0) fail('"tensors" must map at least one tensor name to its SHA-256');
  const tensors: Record<string, string> = {};
  for (const [name, value] of Object.entries(raw.tensors)) tensors[name] = digest(value, `tensors[${JSON.stringify(name)}]`);
  const addedAt = text(raw.addedAt, '"addedAt"');
  if (Number.isNaN(Date.parse(addedAt))) fail(`"addedAt" must be an ISO 8601 time, got ${JSON.stringify(addedAt)}`);
  return Object.freeze({ name: ref.name, version: ref.version, format: raw.format, path, files: Object.freeze(files), tensors: Object.freeze(tensors), shape: Object.freeze(decodeShape(raw.shape)), addedAt });
}

export function encodeVersionRecord(record: ModelVersionRecord): string {
  return JSON.stringify(validateVersionRecord(record));
}

/** Parses the JSON stored in etcd; InvalidArgumentError (naming `where`) when it is not a record. */
export function decodeVersionRecord(json: string, where: string): ModelVersionRecord {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (err) {
    throw new InvalidArgumentError(`${where}: not JSON (${(err as Error).message})`, { cause: err });
  }
  try {
    return validateVersionRecord(raw);
  } catch (err) {
    throw new InvalidArgumentError(`${where}: ${(err as Error).message}`, { cause: err });
  }
}

export function recordRef(record: ModelVersionRecord): ModelRef {
  return { name: record.name, version: record.version };
}

export function recordRefText(record: ModelVersionRecord): string {
  return formatModelRef(recordRef(record));
}

/**
 * Why a worker refused a version: the file (or tensor) whose digest did not match, and the two
 * digests. Written by the worker under its own key (`models/failures/<worker>/NAME@VERSION`).
 */
export interface VersionFailure {
  readonly worker: string;
  readonly ref: string;
  /** The weight file (hub shard or GGUF file), or `tensor NAME` when fetched from the coordinator. */
  readonly file: string;
  readonly expectedSha256: string;
  readonly actualSha256: string;
  readonly at: string;
}

export function decodeVersionFailure(json: string, where: string): VersionFailure {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (err) {
    throw new InvalidArgumentError(`${where}: not JSON (${(err as Error).message})`, { cause: err });
  }
  if (!isObject(raw)) throw new InvalidArgumentError(`${where}: not an object`);
  for (const key of ['worker', 'ref', 'file', 'expectedSha256', 'actualSha256', 'at'] as const) {
    if (typeof raw[key] !== 'string') throw new InvalidArgumentError(`${where}: "${key}" must be a string`);
  }
  return raw as unknown as VersionFailure;
}
