/**
 * The bookkeeping placement.ts builds a plan with: what the model costs per stage (Sizing) and
 * what each member has taken so far (Ledger), with the choices of rules 3-5 that depend on them.
 */
import type { MemberInfo } from '../common/cluster/member';
import { InvalidArgumentError } from '../common/errors';
import type { LayerRange, WorkerId } from '../common/ids';

export interface Sizing {
  readonly numLayers: number;
  /** Bytes one layer costs the stage that holds it (experts included in "local" mode). */
  readonly stageLayerBytes: number;
  readonly embeddingBytes: number;
  readonly headBytes: number;
  readonly numExperts: number;
  readonly expertBytes: number;
  readonly spread: boolean;
  readonly replicas: 1 | 2;
  /** Observed tokens by layer * numExperts + expert; undefined without a load (or all zeros). */
  readonly tokens: readonly number[] | undefined;
  /** Sum of `tokens` over each layer's experts. */
  readonly layerTokens: readonly number[];
}

/** Bytes a stage of `range` takes: its layers, plus the embedding (first) or the LM head (last). */
export function stageBytes(s: Sizing, range: LayerRange): number {
  const layers = (range.end - range.start) * s.stageLayerBytes;
  return layers + (range.start === 0 ? s.embeddingBytes : 0) + (range.end === s.numLayers ? s.headBytes : 0);
}

/** The key under which a worker's expected tokens over every layer are kept. */
const ALL_LAYERS = -1;

function lexLess(a: readonly number[], b: readonly number[]): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] < b[i];
  return false;
}

/** Bytes (and expected expert dispatch tokens) committed per worker while a plan is being built. */
export class Ledger {
  private readonly usedBytes = new Map<WorkerId, number>();
  private readonly tokensByWorker = new Map<WorkerId, Map<number, number>>();
  constructor(readonly members: readonly MemberInfo[]) {}

  /** An independent copy, to try one order of placement without committing to it. */
  clone(): Ledger {
    const copy = new Ledger(this.members);
    for (const [w, bytes] of this.usedBytes) copy.usedBytes.set(w, bytes);
    for (const [w, byLayer] of this.tokensByWorker) copy.tokensByWorker.set(w, new Map(byLayer));
    return copy;
  }

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
  /** Expected dispatch tokens of the expert copies a worker holds, in one layer or in all. */
  tokens(w: WorkerId, layer?: number): number {
    return this.tokensByWorker.get(w)?.get(layer ?? ALL_LAYERS) ?? 0;
  }
  addTokens(w: WorkerId, layer: number, tokens: number): void {
    const byLayer = this.tokensByWorker.get(w) ?? new Map<number, number>();
    byLayer.set(layer, (byLayer.get(layer) ?? 0) + tokens);
    byLayer.set(ALL_LAYERS, (byLayer.get(ALL_LAYERS) ?? 0) + tokens);
    this.tokensByWorker.set(w, byLayer);
  }
  /**
   * The balanced choice (header): the member (not in `exclude`) with room for an expert copy of
   * `bytes` that is expected to serve `tokens` of `layer`, with the lowest expected load in that
   * layer after taking it, then over all layers, then the lowest utilisation after it. Members
   * are in id order and only a strictly better one replaces the best so far: ties go to the
   * lower id.
   */
  expertHolder(bytes: number, exclude: ReadonlySet<WorkerId>, layer: number, tokens: number): WorkerId | undefined {
    let best: WorkerId | undefined;
    let bestKey: readonly number[] = [];
    for (const m of this.members) {
      if (exclude.has(m.id) || !this.fits(m.id, bytes)) continue;
      const key = [this.tokens(m.id, layer) + tokens, this.tokens(m.id) + tokens, (this.used(m.id) + bytes) / m.memoryBytes];
      if (best === undefined || lexLess(key, bestKey)) {
        best = m.id;
        bestKey = key;
      }
    }
    return best;
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
