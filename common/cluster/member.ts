/**
 * What a worker advertises about itself in etcd under `members/<workerId>` (see etcd-keys.ts).
 * The record lives on the worker's lease, so it disappears when the worker stops renewing it:
 * its presence is the membership signal, its content feeds placement (memory) and routing (load).
 *
 * Records come from other processes, so decoding never throws past this module's callers'
 * boundary: `tryDecodeMember` returns a reason instead, for the watcher to log and skip.
 */
import { InvalidArgumentError } from '../errors';
import { type WorkerId, workerId } from '../ids';

export interface MemberLoad {
  /** Sequences with state (KV cache) on this worker right now. */
  readonly activeSequences: number;
  /** Requests waiting for a compute slot. */
  readonly queueDepth: number;
}

export type WeightPrecision = 'stored' | 'f32';

export interface MemberInfo {
  readonly id: WorkerId;
  /** host:port of the worker's Worker gRPC service. */
  readonly address: string;
  /** host:port of its Prometheus endpoint, when it exposes one. */
  readonly metricsAddress?: string;
  /** Bytes this worker may fill with weights (placement budget, not total RAM). */
  readonly memoryBytes: number;
  /** Free-form accelerator names ("cpu", "avx512", ...); informational. */
  readonly accelerators: readonly string[];
  /**
   * How the worker holds linear-layer weights: in the checkpoint's precision (the native kernels;
   * bf16 takes 2 bytes) or widened to float32 (onnxruntime). Placement sizes stages by it; absent
   * means float32, the larger.
   */
  readonly weightPrecision?: WeightPrecision;
  readonly load: MemberLoad;
  /** Wall-clock time (ms since the Unix epoch) at which the worker process started. */
  readonly startedAtMs: number;
}

/** Worker ids appear inside etcd keys, so they must be non-empty and free of '/' and spaces. */
const WORKER_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;
/** host:port, where host is a name, IPv4 address or bracketed IPv6 address. */
const ADDRESS_PATTERN = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})$/;

export function isValidWorkerId(raw: string): boolean {
  return WORKER_ID_PATTERN.test(raw);
}

/** Parses a worker id from user or wire input; throws InvalidArgumentError when unusable. */
export function parseWorkerId(raw: string): WorkerId {
  if (!isValidWorkerId(raw)) {
    throw new InvalidArgumentError(`worker id ${JSON.stringify(raw)} must match ${WORKER_ID_PATTERN.source}`);
  }
  return workerId(raw);
}

function isAddress(raw: unknown): raw is string {
  if (typeof raw !== 'string') return false;
  const match = ADDRESS_PATTERN.exec(raw);
  if (match === null) return false;
  const port = Number(match[2]);
  return port > 0 && port <= 65535;
}

function isCount(raw: unknown): raw is number {
  return typeof raw === 'number' && Number.isSafeInteger(raw) && raw >= 0;
}

type Json = Record<string, unknown>;

function isObject(raw: unknown): raw is Json {
  return raw !== null && typeof raw === 'object' && !Array.isArray(raw);
}

const MEMBER_KEYS = new Set(['id', 'address', 'metricsAddress', 'memoryBytes', 'accelerators', 'weightPrecision', 'load', 'startedAtMs']);
const LOAD_KEYS = new Set(['activeSequences', 'queueDepth']);

/** Checks a decoded JSON value field by field; throws InvalidArgumentError naming the field. */
export function validateMember(raw: unknown): MemberInfo {
  if (!isObject(raw)) throw new InvalidArgumentError('member record must be a JSON object');
  for (const key of Object.keys(raw)) {
    if (!MEMBER_KEYS.has(key)) throw new InvalidArgumentError(`member record has unknown field "${key}"`);
  }
  if (typeof raw.id !== 'string') throw new InvalidArgumentError('member "id" must be a string');
  const id = parseWorkerId(raw.id);
  if (!isAddress(raw.address)) {
    throw new InvalidArgumentError(`member "address" must be host:port, got ${JSON.stringify(raw.address)}`);
  }
  if (raw.metricsAddress !== undefined && !isAddress(raw.metricsAddress)) {
    throw new InvalidArgumentError(`member "metricsAddress" must be host:port, got ${JSON.stringify(raw.metricsAddress)}`);
  }
  if (!isCount(raw.memoryBytes) || raw.memoryBytes === 0) {
    throw new InvalidArgumentError(`member "memoryBytes" must be a positive integer, got ${JSON.stringify(raw.memoryBytes)}`);
  }
  const accelerators = raw.accelerators;
  if (!Array.isArray(accelerators) || !accelerators.every((a): a is string => typeof a === 'string')) {
    throw new InvalidArgumentError('member "accelerators" must be an array of strings');
  }
  if (raw.weightPrecision !== undefined && raw.weightPrecision !== 'stored' && raw.weightPrecision !== 'f32') {
    throw new InvalidArgumentError(`member "weightPrecision" must be "stored" or "f32", got ${JSON.stringify(raw.weightPrecision)}`);
  }
  const load = raw.load;
  if (!isObject(load)) throw new InvalidArgumentError('member "load" must be an object');
  for (const key of Object.keys(load)) {
    if (!LOAD_KEYS.has(key)) throw new InvalidArgumentError(`member "load" has unknown field "${key}"`);
  }
  if (!isCount(load.activeSequences) || !isCount(load.queueDepth)) {
    throw new InvalidArgumentError('member "load.activeSequences" and "load.queueDepth" must be non-negative integers');
  }
  if (!isCount(raw.startedAtMs)) {
    throw new InvalidArgumentError(`member "startedAtMs" must be a non-negative integer, got ${JSON.stringify(raw.startedAtMs)}`);
  }
  return Object.freeze({
    id,
    address: raw.address,
    ...(raw.metricsAddress === undefined ? {} : { metricsAddress: raw.metricsAddress }),
    memoryBytes: raw.memoryBytes,
    accelerators: Object.freeze([...accelerators]),
    ...(raw.weightPrecision === undefined ? {} : { weightPrecision: raw.weightPrecision }),
    load: Object.freeze({ activeSequences: load.activeSequences, queueDepth: load.queueDepth }),
    startedAtMs: raw.startedAtMs,
  });
}

/** The JSON stored in etcd. Validates first, so a worker can never publish a record others reject. */
export function encodeMember(member: MemberInfo): string {
  const checked = validateMember(JSON.parse(JSON.stringify(member)) as unknown);
  return JSON.stringify(checked);
}

/** Decodes a stored record; throws InvalidArgumentError on bad JSON or a bad field. */
export function decodeMember(text: string): MemberInfo {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new InvalidArgumentError(`member record is not valid JSON (${(err as Error).message})`, { cause: err });
  }
  return validateMember(raw);
}

export type MemberDecodeResult =
  | { readonly ok: true; readonly member: MemberInfo }
  | { readonly ok: false; readonly reason: string };

/**
 * Decodes the record stored under `members/<expectedId>`. Never throws: a record from a broken or
 * foreign writer yields a reason to log, and the caller ignores it.
 */
export function tryDecodeMember(text: string, expectedId: string): MemberDecodeResult {
  try {
    const member = decodeMember(text);
    if (member.id !== expectedId) {
      return { ok: false, reason: `record for "${expectedId}" carries id "${member.id}"` };
    }
    return { ok: true, member };
  } catch (err) {
    return { ok: false, reason: err instanceof Error ? err.message : String(err) };
  }
}

/** True when two records differ in anything a watcher should report as an update. */
export function memberChanged(a: MemberInfo, b: MemberInfo): boolean {
  return encodeMember(a) !== encodeMember(b);
}
