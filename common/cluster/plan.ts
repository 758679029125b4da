/**
 * The placement plan: which worker serves which decoder layers (pipeline stages) and, for
 * Mixtral in "spread" mode, which worker holds which expert. The coordinator publishes it in etcd
 * under `plan`; every activation frame carries its `epoch` as a fencing token.
 *
 * Invariants (checked by `validatePlan`, so a decoded plan always satisfies them):
 * - stages are half-open ranges [start, end), in order, contiguous, covering [0, numLayers),
 *   each holding at least one layer;
 * - each stage lists at least one worker, no worker twice; workers[0] is the primary owner and
 *   the rest are standby replicas holding the same range;
 * - experts, when present, place every expert 0..numExperts-1 of every layer exactly once, each
 *   on at least one worker, no worker twice.
 */
import { InvalidArgumentError } from '../errors';
import { type LayerRange, type WorkerId, formatRange, workerId } from '../ids';
import { isModelRef } from '../models/model-ref';
import { isValidWorkerId } from './member';

export interface StagePlan {
  readonly range: LayerRange;
  /** First = primary owner; the others are standbys holding the same range. */
  readonly workers: readonly WorkerId[];
}

export interface ExpertPlacement {
  readonly layer: number;
  readonly expert: number;
  /** Every worker holding this expert's weights; any of them may compute it. */
  readonly workers: readonly WorkerId[];
}

export interface Plan {
  /** Strictly increasing across published plans; 1 is the first. */
  readonly epoch: number;
  readonly modelId: string;
  /**
   * The registered version (`NAME@VERSION`, common/models/) the plan serves, when the coordinator
   * was given one: workers verify their weights against its digests before serving.
   */
  readonly modelVersion?: string;
  readonly numLayers: number;
  readonly stages: readonly StagePlan[];
  /** Present only when experts are placed apart from their layer's stage (Mixtral "spread"). */
  readonly experts?: readonly ExpertPlacement[];
  /** Present on a planned change (drain, join, rebalance): see Handover. */
  readonly handover?: Handover;
}

/**
 * A planned change moves the KV caches instead of replaying every sequence. Workers load the new
 * plan but keep serving `fromEpoch` until the coordinator, with the pipeline idle, commits it
 * (Worker.CommitPlan); each new stage then copies its layers' caches from the primaries of
 * `fromEpoch`, listed in `stages`.
 */
export interface Handover {
  readonly fromEpoch: number;
  readonly stages: readonly { readonly range: LayerRange; readonly worker: WorkerId }[];
}

export interface WorkerAssignment {
  /** Every range the worker holds, as primary or standby, in layer order. */
  readonly ranges: readonly LayerRange[];
  /** Experts placed on this worker explicitly, by layer, in layer then expert order. */
  readonly experts: readonly { readonly layer: number; readonly experts: readonly number[] }[];
}

type Json = Record<string, unknown>;

function isObject(raw: unknown): raw is Json {
  return raw !== null && typeof raw === 'object' && !Array.isArray(raw);
}

function isIndex(raw: unknown): raw is number {
  return typeof raw === 'number' && Number.isSafeInteger(raw) && raw >= 0;
}

function fail(message: string): never {
  throw new InvalidArgumentError(`invalid plan: ${message}`);
}

function checkKeys(raw: Json, allowed: readonly string[], what: string): void {
  for (const key of Object.keys(raw)) {
    if (!allowed.includes(key)) fail(`${what} has unknown field "${key}"`);
  }
}

function workerList(raw: unknown, what: string): WorkerId[] {
  if (!Array.isArray(raw) || raw.length === 0) fail(`${what} must list at least one worker`);
  const seen = new Set<string>();
  for (const w of raw) {
    if (typeof w !== 'string' || !isValidWorkerId(w)) fail(`${what} has bad worker id ${JSON.stringify(w)}`);
    if (seen.has(w)) fail(`${what} lists worker "${w}" twice`);
    seen.add(w);
  }
  return raw.map(workerId);
}

function validateStages(raw: unknown, numLayers: number): StagePlan[] {
  if (!Array.isArray(raw) || raw.length === 0) fail('"stages" must be a non-empty array');
  let next = 0;
  const stages = raw.map((stage: unknown, i): StagePlan => {
    if (!isObject(stage)) fail(`stage ${i} must be an object`);
    checkKeys(stage, ['range', 'workers'], `stage ${i}`);
    const range = stage.range;
    if (!isObject(range) || !isIndex(range.start) || !isIndex(range.end)) {
      fail(`stage ${i} "range" must be {start, end} with non-negative integers`);
    }
    checkKeys(range, ['start', 'end'], `stage ${i} range`);
    const r: LayerRange = { start: range.start, end: range.end };
    if (r.start !== next) fail(`stage ${i} ${formatRange(r)} must start at layer ${next} (no gaps or overlaps)`);
    if (r.end <= r.start) fail(`stage ${i} ${formatRange(r)} must hold at least one layer`);
    if (r.end > numLayers) fail(`stage ${i} ${formatRange(r)} ends past numLayers ${numLayers}`);
    next = r.end;
    return { range: r, workers: workerList(stage.workers, `stage ${i}`) };
  });
  if (next !== numLayers) fail(`stages end at layer ${next}, must cover [0, ${numLayers})`);
  return stages;
}

function validateExperts(raw: unknown, numLayers: number): ExpertPlacement[] {
  if (!Array.isArray(raw) || raw.length === 0) fail('"experts", when present, must be a non-empty array');
  const perLayer = new Map<number, Set<number>>();
  const placements = raw.map((p: unknown, i): ExpertPlacement => {
    if (!isObject(p)) fail(`experts[${i}] must be an object`);
    checkKeys(p, ['layer', 'expert', 'workers'], `experts[${i}]`);
    if (!isIndex(p.layer) || p.layer >= numLayers) fail(`experts[${i}] layer must be in [0, ${numLayers})`);
    if (!isIndex(p.expert)) fail(`experts[${i}] expert must be a non-negative integer`);
    const seen = perLayer.get(p.layer) ?? new Set<number>();
    if (seen.has(p.expert)) fail(`expert ${p.expert} of layer ${p.layer} is placed twice`);
    seen.add(p.expert);
    perLayer.set(p.layer, seen);
    return { layer: p.layer, expert: p.expert, workers: workerList(p.workers, `experts[${i}]`) };
  });
  const numExperts = perLayer.get(0)?.size ?? 0;
  for (let layer = 0; layer < numLayers; layer++) {
    const seen = perLayer.get(layer);
    if (seen === undefined || seen.size !== numExperts || [...seen].some((e) => e >= numExperts)) {
      fail(`layer ${layer} must place experts 0..${numExperts - 1} exactly once, like layer 0`);
    }
  }
  return placements;
}

function validateHandover(raw: unknown, epoch: number, numLayers: number): Handover {
  if (!isObject(raw)) fail('"handover" must be an object');
  checkKeys(raw, ['fromEpoch', 'stages'], 'handover');
  if (!isIndex(raw.fromEpoch) || raw.fromEpoch === 0 || raw.fromEpoch >= epoch) fail(`handover "fromEpoch" must be a positive integer below ${epoch}`);
  const stages = validateStages(
    Array.isArray(raw.stages) ? raw.stages.map((s: unknown) => (isObject(s) ? { range: s.range, workers: [s.worker] } : s)) : raw.stages,
    numLayers,
  );
  return { fromEpoch: raw.fromEpoch, stages: stages.map((s) => ({ range: s.range, worker: s.workers[0] })) };
}

/** Checks a decoded JSON value against every invariant above; returns a frozen Plan. */
export function validatePlan(raw: unknown): Plan {
  if (!isObject(raw)) fail('must be a JSON object');
  checkKeys(raw, ['epoch', 'modelId', 'modelVersion', 'numLayers', 'stages', 'experts', 'handover'], 'plan');
  if (!isIndex(raw.epoch) || raw.epoch === 0) fail(`"epoch" must be a positive integer, got ${JSON.stringify(raw.epoch)}`);
  if (typeof raw.modelId !== 'string' || raw.modelId.length === 0) fail('"modelId" must be a non-empty string');
  if (raw.modelVersion !== undefined && (typeof raw.modelVersion !== 'string' || !isModelRef(raw.modelVersion))) fail('"modelVersion", when present, must be NAME@VERSION');
  if (!isIndex(raw.numLayers) || raw.numLayers === 0) fail('"numLayers" must be a positive integer');
  const stages = validateStages(raw.stages, raw.numLayers);
  const experts = raw.experts === undefined ? undefined : validateExperts(raw.experts, raw.numLayers);
  const handover = raw.handover === undefined ? undefined : validateHandover(raw.handover, raw.epoch, raw.numLayers);
  return deepFreeze({
    epoch: raw.epoch,
    modelId: raw.modelId,
    ...(raw.modelVersion === undefined ? {} : { modelVersion: raw.modelVersion }),
    numLayers: raw.numLayers,
    stages,
    ...(experts === undefined ? {} : { experts }),
    ...(handover === undefined ? {} : { handover }),
  });
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

/** The JSON stored in etcd. Validates first: an invalid plan is never published. */
export function encodePlan(plan: Plan): string {
  return JSON.stringify(validatePlan(JSON.parse(JSON.stringify(plan)) as unknown));
}

/** Decodes stored JSON; throws InvalidArgumentError on bad JSON or any broken invariant. */
export function decodePlan(text: string): Plan {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new InvalidArgumentError(`invalid plan: not valid JSON (${(err as Error).message})`, { cause: err });
  }
  return validatePlan(raw);
}

/** The stage that serves `layer`; throws InvalidArgumentError when the layer is out of range. */
export function stageOf(plan: Plan, layer: number): StagePlan {
  if (!Number.isInteger(layer) || layer < 0 || layer >= plan.numLayers) {
    throw new InvalidArgumentError(`layer ${layer} is outside [0, ${plan.numLayers})`);
  }
  // Stages are sorted and contiguous, so a binary search finds the one containing `layer`.
  let lo = 0;
  let hi = plan.stages.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (plan.stages[mid].range.end <= layer) lo = mid + 1;
    else hi = mid;
  }
  return plan.stages[lo];
}

/** What `worker` must load for this plan: its ranges (primary or standby) and explicit experts. */
export function assignmentsOf(plan: Plan, worker: WorkerId): WorkerAssignment {
  const ranges = plan.stages.filter((s) => s.workers.includes(worker)).map((s) => s.range);
  const byLayer = new Map<number, number[]>();
  for (const p of plan.experts ?? []) {
    if (!p.workers.includes(worker)) continue;
    const list = byLayer.get(p.layer) ?? [];
    list.push(p.expert);
    byLayer.set(p.layer, list);
  }
  const experts = [...byLayer.entries()]
    .sort(([a], [b]) => a - b)
    .map(([layer, list]) => ({ layer, experts: list.sort((a, b) => a - b) }));
  return { ranges, experts };
}

/** Every worker the plan names, in first-mention order. */
export function workersOf(plan: Plan): WorkerId[] {
  const seen = new Set<WorkerId>();
  for (const s of plan.stages) for (const w of s.workers) seen.add(w);
  for (const p of plan.experts ?? []) for (const w of p.workers) seen.add(w);
  return [...seen];
}

/**
 * Whether two plans place experts alike: the same holders for every expert, whatever the order
 * of the entries or of each entry's holders (any holder may compute an expert).
 */
export function sameExperts(a: Plan, b: Plan): boolean {
  return expertsKey(a) === expertsKey(b);
}

/** Whether two plans place alike: the same stages (ranges, primary first) and the same experts. */
export function samePlacement(a: Plan, b: Plan): boolean {
  return JSON.stringify(a.stages) === JSON.stringify(b.stages) && sameExperts(a, b);
}

function expertsKey(plan: Plan): string {
  const experts = (plan.experts ?? [])
    .map((p) => ({ layer: p.layer, expert: p.expert, workers: [...p.workers].sort() }))
    .sort((a, b) => a.layer - b.layer || a.expert - b.expert);
  return JSON.stringify(experts);
}
