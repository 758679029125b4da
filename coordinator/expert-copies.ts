/**
 * Expert copies (rules 3 and 5 of placement.ts): how many copies each expert wants given the
 * routing load, and placing them one by one by memory or by the balanced choice.
 */
import type { WorkerId } from '../common/ids';
import type { Ledger, Sizing } from './placement-ledger';

/** An expert is hot above this many times an even share of its layer's tokens. */
const HOT_SHARE_FACTOR = 2;

/** One expert's copies while a plan is being built. */
export interface Copies {
  readonly layer: number;
  readonly expert: number;
  readonly workers: WorkerId[];
  /** Observed tokens (0 without a load). */
  readonly tokens: number;
  /** Copies rule 3 requires plus those rule 5 wants for a hot expert. */
  readonly wanted: number;
  /** Expected tokens each copy serves (the routing load section of the header). */
  readonly copyTokens: number;
}

/**
 * Every expert with the copies it already has (kept from a previous plan), hottest first (ties:
 * layer, expert; without a load that is plain layer order). Kept copies count towards their
 * workers' expected load before any new copy is placed.
 */
export function expertCopies(
  previous: readonly { layer: number; expert: number; workers: WorkerId[] }[],
  ledger: Ledger,
  s: Sizing,
  memberCount: number,
): Copies[] {
  const required = Math.min(2, memberCount);
  const kept = new Map(previous.map((p) => [p.layer * s.numExperts + p.expert, p.workers]));
  const copies: Copies[] = [];
  for (let layer = 0; layer < s.numLayers; layer++) {
    for (let expert = 0; expert < s.numExperts; expert++) {
      const key = layer * s.numExperts + expert;
      const workers = [...(kept.get(key) ?? [])];
      const tokens = s.tokens?.[key] ?? 0;
      const wanted = wantedCopies(tokens, s.layerTokens[layer], s.numExperts, required, memberCount);
      copies.push({ layer, expert, workers, tokens, wanted, copyTokens: tokens / Math.max(wanted, workers.length) });
    }
  }
  copies.sort((a, b) => b.tokens - a.tokens || a.layer - b.layer || a.expert - b.expert);
  for (const c of copies) for (const w of c.workers) ledger.addTokens(w, c.layer, c.copyTokens);
  return copies;
}

/** Adds copies of `c` until it has `count`, each by the balanced choice, or by memory alone
 * (rule 3) unless `balance`; false when one fits nowhere. */
export function fill(c: Copies, count: number, ledger: Ledger, s: Sizing, balance: boolean): boolean {
  while (c.workers.length < count) {
    const w = balance ? ledger.expertHolder(s.expertBytes, new Set(c.workers), c.layer, c.copyTokens) : ledger.leastUtilised(s.expertBytes, new Set(c.workers));
    if (w === undefined) return false;
    ledger.add(w, s.expertBytes);
    ledger.addTokens(w, c.layer, c.copyTokens);
    c.workers.push(w);
  }
  return true;
}

/** Hot: share = tokens / layerTokens > 2 / numExperts. Then ceil(share x numExperts) copies, at
 * most one per member; otherwise the `required` copies (see the header). Integer comparisons,
 * so a share of exactly twice an even one is not hot. */
function wantedCopies(tokens: number, layerTokens: number, numExperts: number, required: number, memberCount: number): number {
  const scaled = tokens * numExperts; // share x numExperts x layerTokens
  if (layerTokens === 0 || scaled <= HOT_SHARE_FACTOR * layerTokens) return required;
  // The smallest n with n x layerTokens >= scaled; the loops only correct the division's rounding.
  let wanted = Math.ceil(scaled / layerTokens);
  while (wanted * layerTokens < scaled) wanted++;
  while ((wanted - 1) * layerTokens >= scaled) wanted--;
  return Math.min(memberCount, Math.max(required, wanted));
}
