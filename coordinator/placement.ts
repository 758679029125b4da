/**
 * Placement: a pure, deterministic function from (members, model footprint, previous plan) to a
 * Plan. It decides only; publishing and loading live elsewhere (plan-store.ts, the workers).
 *
 * Rules, in the order they apply:
 * 1. Repair before re-plan. With a compatible `previous` plan, departed workers are dropped from
 *    it; if every stage still has a holder (a standby is promoted to primary) and every kept
 *    share still fits its worker's memory, the ranges are kept and only missing standbys and
 *    expert copies are added. Nothing that is already loaded moves (minimal movement).
 * 2. Otherwise a fresh plan: at most numLayers primaries (largest memory first, ties by id),
 *    ordered by id. Each gets one layer, then every further layer goes to the stage whose memory
 *    utilisation after taking it is lowest (ties: the earlier stage). That greedy minimises the
 *    peak utilisation, so a worker with twice the memory gets about twice the layers. The first
 *    stage also holds the embedding, the last the LM head.
 * 3. Experts ("spread"): every (layer, expert) goes to min(2, members) distinct workers, each copy
 *    to the worker with the lowest utilisation after taking it. In "local" mode a stage holds
 *    all experts of its layers and the plan lists none.
 * 4. Standbys (replicas 2): each stage's range is copied to the least-utilised other worker that
 *    has room; a stage keeps a single holder when no worker has room (not an error).
 * Every tie is broken by worker id, and members are sorted first, so input order never matters.
 */
import { type MemberInfo } from '../common/cluster/member';
import { type ExpertPlacement, type Plan, type StagePlan, validatePlan } from '../common/cluster/plan';
import { InvalidArgumentError, ResourceExhaustedError, UnavailableError } from '../common/errors';
import { type LayerRange, type WorkerId } from '../common/ids';

export interface ModelFootprint {
  readonly numLayers: number;
  /** One decoder layer without its experts (attention, norms, router), or the whole dense layer. */
  readonly layerBytes: number;
  /** Token embedding table; held by the first stage. */
  readonly embeddingBytes: number;
  /** Final norm + LM head; held by the last stage. */
  readonly headBytes: number;
  /** Experts per layer; 0 for a dense (Mistral) model. */
  readonly numExperts: number;
  /** One expert of one layer. */
  readonly expertBytes: number;
}

export type ExpertsMode = 'local' | 'spread';

export interface PlacementInput {
  readonly members: readonly MemberInfo[];
  readonly model: ModelFootprint;
  readonly previous?: Plan;
  readonly epoch: number;
  readonly modelId: string;
  /** Holders per stage range: 1 = primary only, 2 = primary + one standby when memory allows. */
  readonly replicas?: 1 | 2;
  readonly expertsMode?: ExpertsMode;
}

const byId = (a: MemberInfo, b: MemberInfo): number => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/** Bytes committed per worker while a plan is being built. */
class Ledger {
  private readonly usedBytes = new Map<WorkerId, number>();
  constructor(readonly members: readonly MemberInfo[]) {}

  used(w: WorkerId): number {
    return this.usedBytes.get(w) ?? 0;
  }
  memory(w: WorkerId): number {
    const m = this.members.find((x) => x.id === w);
    if (m === undefined) throw new InvalidArgumentError(`worker "${w}" is not a member`);
    return m.memoryBytes;
  }
  fits(w: WorkerId, bytes: number): boolean {
    return this.used(w) + bytes <= this.memory(w);
  }
  add(w: WorkerId, bytes: number): void {
    this.usedBytes.set(w, this.used(w) + bytes);
  }
  /** The member (not in `exclude`) with room for `bytes` and the lowest utilisation after it. */
  leastUtilised(bytes: number, exclude: ReadonlySet<WorkerId>): WorkerId | undefined {
    let best: WorkerId | undefined;
    let bestUtil = Infinity;
    for (const m of this.members) {
      if (exclude.has(m.id) || !this.fits(m.id, bytes)) continue;
      const util = (this.used(m.id) + bytes) / m.memoryBytes;
      if (util < bestUtil) {
        best = m.id;
        bestUtil = util;
      }
    }
    return best;
  }
}

interface Sizing {
  readonly numLayers: number;
  /** Bytes one layer costs the stage that holds it (experts included in "local" mode). */
  readonly stageLayerBytes: number;
  readonly embeddingBytes: number;
  readonly headBytes: number;
  readonly numExperts: number;
  readonly expertBytes: number;
  readonly spread: boolean;
  readonly replicas: 1 | 2;
}

function stageBytes(s: Sizing, range: LayerRange): number {
  const layers = (range.end - range.start) * s.stageLayerBytes;
  return layers + (range.start === 0 ? s.embeddingBytes : 0) + (range.end === s.numLayers ? s.headBytes : 0);
}

function checkInput(input: PlacementInput): Sizing {
  const m = input.model;
  const count = (v: number): boolean => Number.isSafeInteger(v) && v >= 0;
  if (!count(m.numLayers) || m.numLayers === 0) throw new InvalidArgumentError('numLayers must be a positive integer');
  if (!count(m.layerBytes) || m.layerBytes === 0) throw new InvalidArgumentError('layerBytes must be a positive integer');
  for (const [name, v] of Object.entries({ embeddingBytes: m.embeddingBytes, headBytes: m.headBytes, numExperts: m.numExperts, expertBytes: m.expertBytes })) {
    if (!count(v)) throw new InvalidArgumentError(`${name} must be a non-negative integer`);
  }
  if (!count(input.epoch) || input.epoch === 0) throw new InvalidArgumentError('epoch must be a positive integer');
  const spread = (input.expertsMode ?? 'local') === 'spread';
  if (spread && m.numExperts === 0) throw new InvalidArgumentError('expertsMode "spread" needs a model with experts');
  const ids = new Set(input.members.map((x) => x.id));
  if (ids.size !== input.members.length) throw new InvalidArgumentError('members must have distinct ids');
  return {
    numLayers: m.numLayers,
    stageLayerBytes: m.layerBytes + (spread ? 0 : m.numExperts * m.expertBytes),
    embeddingBytes: m.embeddingBytes,
    headBytes: m.headBytes,
    numExperts: m.numExperts,
    expertBytes: m.expertBytes,
    spread,
    replicas: input.replicas ?? 1,
  };
}

/** Decides the plan for `input.epoch`. Throws UnavailableError with no members and
 * ResourceExhaustedError when the model does not fit. */
export function planPlacement(input: PlacementInput): Plan {
  const sizing = checkInput(input);
  const members = [...input.members].sort(byId);
  if (members.length === 0) throw new UnavailableError('no workers are registered: nothing to place the model on');
  const previous = input.previous?.modelId === input.modelId ? input.previous : undefined;
  const repaired = previous === undefined ? undefined : repair(previous, members, sizing);
  const body = repaired ?? fresh(members, sizing);
  return validatePlan({ epoch: input.epoch, modelId: input.modelId, numLayers: sizing.numLayers, ...body });
}

interface PlanBody {
  stages: StagePlan[];
  experts?: ExpertPlacement[];
}

function fresh(members: readonly MemberInfo[], s: Sizing): PlanBody {
  const ledger = new Ledger(members);
  const ranges = primaryRanges(members, s);
  const stages = ranges.map(({ worker, range }) => {
    ledger.add(worker, stageBytes(s, range));
    return { range, workers: [worker] };
  });
  return finish(stages, s.spread ? [] : undefined, ledger, s, members);
}

/** Adds expert copies and standbys to `stages`/`experts`, whose bytes `ledger` already holds. */
function finish(
  stages: { range: LayerRange; workers: WorkerId[] }[],
  experts: { layer: number; expert: number; workers: WorkerId[] }[] | undefined,
  ledger: Ledger,
  s: Sizing,
  members: readonly MemberInfo[],
): PlanBody {
  let placed: ExpertPlacement[] | undefined;
  if (experts !== undefined) {
    const copies = Math.min(2, members.length);
    const byKey = new Map(experts.map((p) => [p.layer * s.numExperts + p.expert, p]));
    for (let layer = 0; layer < s.numLayers; layer++) {
      for (let expert = 0; expert < s.numExperts; expert++) {
        const holders = byKey.get(layer * s.numExperts + expert)?.workers ?? [];
        while (holders.length < copies) {
          const w = ledger.leastUtilised(s.expertBytes, new Set(holders));
          if (w === undefined) {
            throw new ResourceExhaustedError(
              `no worker has room for copy ${holders.length + 1} of expert ${expert} of layer ${layer} (${s.expertBytes} bytes)`,
            );
          }
          ledger.add(w, s.expertBytes);
          holders.push(w);
        }
        byKey.set(layer * s.numExperts + expert, { layer, expert, workers: holders });
      }
    }
    placed = [...byKey.values()]
      .sort((a, b) => a.layer - b.layer || a.expert - b.expert)
      .map((p) => ({ ...p, workers: [...p.workers].sort() }));
  }
  for (const stage of stages) {
    if (stage.workers.length >= s.replicas) continue;
    const bytes = stageBytes(s, stage.range);
    const w = ledger.leastUtilised(bytes, new Set(stage.workers));
    if (w === undefined) continue; // a standby is best effort
    ledger.add(w, bytes);
    stage.workers.push(w);
  }
  return { stages, ...(placed === undefined ? {} : { experts: placed }) };
}

/** Fresh contiguous ranges for the primaries, weighted by memory (rule 2). */
function primaryRanges(members: readonly MemberInfo[], s: Sizing): { worker: WorkerId; range: LayerRange }[] {
  const needed = s.numLayers * s.stageLayerBytes + s.embeddingBytes + s.headBytes;
  const total = members.reduce((sum, m) => sum + m.memoryBytes, 0);
  // Candidates, largest memory first; a worker that cannot hold its stage is dropped and the
  // next candidate takes its place.
  let pool = [...members]
    .filter((m) => m.memoryBytes >= s.stageLayerBytes)
    .sort((a, b) => b.memoryBytes - a.memoryBytes || byId(a, b));
  for (;;) {
    const chosen = pool.slice(0, s.numLayers).sort(byId);
    if (chosen.length === 0) {
      throw new ResourceExhaustedError(
        `the model needs ${needed} bytes with one layer of ${s.stageLayerBytes} bytes; no worker can hold a stage (${total} bytes in all)`,
      );
    }
    const counts = layerCounts(chosen, s);
    if (counts === 'full') {
      throw new ResourceExhaustedError(`the model needs ${needed} bytes of stage memory; the workers have ${total} bytes`);
    }
    if (Array.isArray(counts)) {
      let start = 0;
      return chosen.map((m, i) => {
        const range = { start, end: start + counts[i] };
        start = range.end;
        return { worker: m.id, range };
      });
    }
    // `counts` is a worker that cannot hold even one layer plus its embedding/head share.
    pool = pool.filter((m) => m !== counts);
  }
}

/** Layers per chosen worker; 'full' when the layers do not fit; or, when some stage cannot take
 * even its first layer, the smallest such worker (to be replaced). */
function layerCounts(chosen: readonly MemberInfo[], s: Sizing): number[] | 'full' | MemberInfo {
  const last = chosen.length - 1;
  const extra = (i: number): number => (i === 0 ? s.embeddingBytes : 0) + (i === last ? s.headBytes : 0);
  const bytesWith = (i: number, layers: number): number => extra(i) + layers * s.stageLayerBytes;
  const counts = chosen.map(() => 1);
  const tooSmall = chosen
    .filter((m, i) => bytesWith(i, 1) > m.memoryBytes)
    .sort((a, b) => a.memoryBytes - b.memoryBytes || byId(b, a));
  if (tooSmall.length > 0) return tooSmall[0];
  for (let placed = chosen.length; placed < s.numLayers; placed++) {
    let best = -1;
    let bestUtil = Infinity;
    chosen.forEach((m, i) => {
      const bytes = bytesWith(i, counts[i] + 1);
      if (bytes > m.memoryBytes) return;
      const util = bytes / m.memoryBytes;
      if (util < bestUtil) {
        best = i;
        bestUtil = util;
      }
    });
    if (best < 0) return 'full';
    counts[best] += 1;
  }
  return counts;
}

/** Rule 1: keep `previous` minus departed workers when that is still a valid, fitting plan. */
function repair(previous: Plan, members: readonly MemberInfo[], s: Sizing): PlanBody | undefined {
  if (previous.numLayers !== s.numLayers) return undefined;
  if ((previous.experts !== undefined) !== s.spread) return undefined;
  if (s.spread && (previous.experts?.length ?? 0) !== s.numLayers * s.numExperts) return undefined;
  const present = new Set(members.map((m) => m.id));
  const ledger = new Ledger(members);
  const stages = previous.stages.map((st) => ({
    range: st.range,
    workers: st.workers.filter((w) => present.has(w)).slice(0, s.replicas),
  }));
  if (stages.some((st) => st.workers.length === 0)) return undefined;
  for (const st of stages) for (const w of st.workers) ledger.add(w, stageBytes(s, st.range));
  const experts = previous.experts?.map((p) => ({
    layer: p.layer,
    expert: p.expert,
    workers: p.workers.filter((w) => present.has(w)),
  }));
  for (const p of experts ?? []) for (const w of p.workers) ledger.add(w, s.expertBytes);
  if (members.some((m) => ledger.used(m.id) > m.memoryBytes)) return undefined;
  try {
    return finish(stages, experts, ledger, s, members);
  } catch (err) {
    if (err instanceof ResourceExhaustedError) return undefined; // let a fresh plan rebalance
    throw err;
  }
}
