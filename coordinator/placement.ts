/**
 * Placement: a pure, deterministic function from (members, model footprint, previous plan) to a
 * Plan. It decides only; publishing and loading live elsewhere (plan-store.ts, the workers).
 *
 * Rules, in the order they apply:
 * 1. Repair before re-plan. With a compatible `previous` plan, departed workers are dropped from
 *    it; if every stage still has a holder (a standby is promoted to primary) and every kept
 *    share still fits its worker's memory, the ranges are kept and only missing standbys and
 *    expert copies (and hot experts' further copies, rule 5) are added. Nothing that is already loaded moves (minimal movement).
 * 2. Otherwise a fresh plan: at most numLayers primaries (largest memory first, ties by id),
 *    ordered by id. Each gets one layer, then every further layer goes to the stage whose memory
 *    utilisation after taking it is lowest (ties: the earlier stage). That greedy minimises the
 *    peak utilisation, so a worker with twice the memory gets about twice the layers. The first
 *    stage also holds the embedding, the last the LM head.
 * 3. Experts ("spread"): every (layer, expert) goes to min(2, members) distinct workers, so that
 *    losing one worker loses no expert (an error when they do not fit), each copy to the worker
 *    with the lowest memory utilisation after taking it. In "local" mode a stage holds all
 *    experts of its layers and the plan lists none.
 * 4. Standbys (replicas 2): each stage's range is copied to the least-utilised other worker that
 *    has room; a stage keeps a single holder when no worker has room (not an error).
 * 5. Hot experts (spread, with an observed `expertLoad`, below): a hot expert gets further copies
 *    on workers that do not hold it yet, hottest first, while some worker has room; a copy that
 *    fits nowhere is simply not made (best effort, like standbys).
 * Every tie is broken by worker id, and members and load are sorted first, so input order never
 * matters.
 *
 * Routing load (`expertLoad`: tokens routed to each expert over a recent window):
 * - share(e) = tokens(e) / the sum of tokens over e's layer's experts; an even spread gives every
 *   expert 1 / numExperts. An expert is *hot* when share(e) > 2 / numExperts (more than twice an
 *   even share). It then wants ceil(share(e) x numExperts) copies, at most one per member, so
 *   that no copy serves much more than an even share; every other expert wants min(2, members).
 * - A copy is expected to serve tokens(e) / (the copies e wants, or holds if more): dispatch
 *   spreads an expert's calls over its copies (worker/remote-experts.ts rotates among them).
 *   That estimate ignores that a stage's own copy serves all its stage's calls in place.
 * - Balanced choice: a copy goes to the worker with the lowest expected load in the expert's
 *   layer after taking it (an MoE layer step waits for its slowest holder), then over all layers,
 *   then the lowest memory utilisation after it, then the lower id; experts hottest first (ties:
 *   layer, expert). That greedy keeps each worker's expected load in a layer within about one
 *   copy's share of the others' (tested).
 * - Orders: placing by memory (rules 3, 4, 5 in that order, the load deciding only rule 5's
 *   copies) is the baseline. Two balanced orders are tried first: hot copies right after their
 *   expert's required ones, then hot copies after the standbys. The first of them that fits and
 *   places as many standbys as the baseline is taken, else the baseline: a load never costs a
 *   required copy or a standby, and under tight memory hot copies take only the room left.
 * - No load, or a load of zeros, gives exactly the placement without one.
 * - Repair (rule 1) keeps every copy of the previous plan, so a load that has cooled down drops
 *   no copy and no copy ever moves; it may add copies (rules 3 and 5), placed as above with the
 *   kept copies' expected load counted. Only a fresh plan (a join) places every copy anew.
 */
import { type MemberInfo } from '../common/cluster/member';
import { type ExpertPlacement, type Plan, type StagePlan, validatePlan } from '../common/cluster/plan';
import { InvalidArgumentError, ResourceExhaustedError, UnavailableError } from '../common/errors';
import { type LayerRange, type WorkerId } from '../common/ids';
import { expertCopies, fill, type Copies } from './expert-copies';
import { Ledger, stageBytes, type Sizing } from './placement-ledger';

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

/** Tokens routed to one expert of one layer over a recent window, as workers observed them. */
export interface ExpertLoad {
  readonly layer: number;
  readonly expert: number;
  readonly tokens: number;
}

export interface PlacementInput {
  readonly members: readonly MemberInfo[];
  readonly model: ModelFootprint;
  readonly previous?: Plan;
  readonly epoch: number;
  readonly modelId: string;
  /** The registered version (NAME@VERSION) the plan serves, when there is one; workers verify its digests. */
  readonly modelVersion?: string;
  /** Holders per stage range: 1 = primary only, 2 = primary + one standby when memory allows. */
  readonly replicas?: 1 | 2;
  readonly expertsMode?: ExpertsMode;
  /** Observed routing ("spread" only): hot experts get more copies, copies spread their load.
   * Entries of the same (layer, expert) add up; experts not listed saw no tokens. */
  readonly expertLoad?: readonly ExpertLoad[];
}

const byId = (a: MemberInfo, b: MemberInfo): number => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

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
  const { tokens, layerTokens } = checkLoad(input.expertLoad ?? [], m);
  return {
    numLayers: m.numLayers,
    stageLayerBytes: m.layerBytes + (spread ? 0 : m.numExperts * m.expertBytes),
    embeddingBytes: m.embeddingBytes,
    headBytes: m.headBytes,
    numExperts: m.numExperts,
    expertBytes: m.expertBytes,
    spread,
    replicas: input.replicas ?? 1,
    // In "local" mode experts are not placed, so their load has nothing to decide.
    tokens: spread && layerTokens.some((t) => t > 0) ? tokens : undefined,
    layerTokens,
  };
}

/** Sums the load per (layer, expert), rejecting entries outside the model. */
function checkLoad(load: readonly ExpertLoad[], m: ModelFootprint): { tokens: number[]; layerTokens: number[] } {
  const tokens: number[] = new Array<number>(m.numLayers * m.numExperts).fill(0);
  const layerTokens: number[] = new Array<number>(m.numLayers).fill(0);
  for (const l of load) {
    const where = `expertLoad entry ${JSON.stringify(l)}`;
    if (!Number.isSafeInteger(l.layer) || l.layer < 0 || l.layer >= m.numLayers) throw new InvalidArgumentError(`${where}: layer must be in [0, ${m.numLayers})`);
    if (!Number.isSafeInteger(l.expert) || l.expert < 0 || l.expert >= m.numExperts) throw new InvalidArgumentError(`${where}: expert must be in [0, ${m.numExperts})`);
    if (!Number.isSafeInteger(l.tokens) || l.tokens < 0) throw new InvalidArgumentError(`${where}: tokens must be a non-negative integer`);
    tokens[l.layer * m.numExperts + l.expert] += l.tokens;
    layerTokens[l.layer] += l.tokens;
    if (!Number.isSafeInteger(layerTokens[l.layer])) throw new InvalidArgumentError(`expertLoad of layer ${l.layer} sums past 2^53 tokens`);
  }
  return { tokens, layerTokens };
}

/** Decides the plan for `input.epoch`. Throws UnavailableError with no members and
 * ResourceExhaustedError when the model does not fit. */
export function planPlacement(input: PlacementInput): Plan {
  const sizing = checkInput(input);
  const members = [...input.members].sort(byId);
  if (members.length === 0) throw new UnavailableError('no workers are registered: nothing to place the model on');
  const previous = input.previous?.modelId === input.modelId && input.previous.modelVersion === input.modelVersion ? input.previous : undefined;
  const repaired = previous === undefined ? undefined : repair(previous, members, sizing);
  const body = repaired ?? fresh(members, sizing);
  const version = input.modelVersion === undefined ? {} : { modelVersion: input.modelVersion };
  return validatePlan({ epoch: input.epoch, modelId: input.modelId, ...version, numLayers: sizing.numLayers, ...body });
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

/**
 * Adds expert copies and standbys to `stages`/`experts`, whose bytes `ledger` already holds.
 *
 * With a load, up to three orders are tried (header, "Orders"); a load-balanced one is kept only
 * when it fits and places as many standbys as placing by memory does.
 */
function finish(
  stages: readonly { range: LayerRange; workers: WorkerId[] }[],
  experts: readonly { layer: number; expert: number; workers: WorkerId[] }[] | undefined,
  ledger: Ledger,
  s: Sizing,
  members: readonly MemberInfo[],
): PlanBody {
  const attempt = (order: Order): Attempt => place(stages, experts, ledger.clone(), s, members.length, order);
  const byMemory = attempt({ balance: false, hotTogether: false }); // throws when the required copies do not fit
  if (s.tokens === undefined || experts === undefined) return byMemory.body;
  for (const order of [{ balance: true, hotTogether: true }, { balance: true, hotTogether: false }]) {
    let balanced: Attempt;
    try {
      balanced = attempt(order);
    } catch (err) {
      if (err instanceof ResourceExhaustedError) continue;
      throw err;
    }
    if (balanced.standbys >= byMemory.standbys) return balanced.body;
  }
  return byMemory.body;
}

interface Order {
  /** Required copies by the balanced choice, hottest first; else by memory alone (rule 3), in
   * layer order. Hot experts' further copies always use the balanced choice. */
  readonly balance: boolean;
  /** Hot experts' further copies right after their required ones; else after the standbys. */
  readonly hotTogether: boolean;
}

interface Attempt {
  readonly body: PlanBody;
  /** Stage holders beyond the primaries. */
  readonly standbys: number;
}

/** Rules 3-5 in one order, on copies of `stages`/`experts`; `ledger` is this attempt's own. */
function place(
  stagesIn: readonly { range: LayerRange; workers: WorkerId[] }[],
  experts: readonly { layer: number; expert: number; workers: WorkerId[] }[] | undefined,
  ledger: Ledger,
  s: Sizing,
  memberCount: number,
  order: Order,
): Attempt {
  const stages = stagesIn.map((st) => ({ range: st.range, workers: [...st.workers] }));
  const hottestFirst = experts === undefined ? [] : expertCopies(experts, ledger, s, memberCount);
  const byLayer = [...hottestFirst].sort((a, b) => a.layer - b.layer || a.expert - b.expert);
  const required = Math.min(2, memberCount);
  for (const c of order.balance ? hottestFirst : byLayer) {
    if (!fill(c, required, ledger, s, order.balance)) {
      throw new ResourceExhaustedError(`no worker has room for copy ${c.workers.length + 1} of expert ${c.expert} of layer ${c.layer} (${s.expertBytes} bytes)`);
    }
    if (order.hotTogether) fill(c, c.wanted, ledger, s, true);
  }
  for (const stage of stages) {
    if (stage.workers.length >= s.replicas) continue;
    const bytes = stageBytes(s, stage.range);
    const w = ledger.leastUtilised(bytes, new Set(stage.workers));
    if (w === undefined) continue; // a standby is best effort
    ledger.add(w, bytes);
    stage.workers.push(w);
  }
  // Hottest first, so that the hottest get what room there is.
  if (!order.hotTogether) for (const c of hottestFirst) fill(c, c.wanted, ledger, s, true);
  const placed = byLayer.map((c): ExpertPlacement => ({ layer: c.layer, expert: c.expert, workers: [...c.workers].sort() }));
  return {
    body: { stages, ...(experts === undefined ? {} : { experts: placed }) },
    standbys: stages.reduce((n, st) => n + st.workers.length - 1, 0),
  };
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
