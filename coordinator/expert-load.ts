/**
 * Observed expert routing, for placement. Each worker's Status reply carries the tokens its stages
 * have routed to every (layer, expert) since it started; the coordinator collects these every
 * `expertRebalanceIntervalMs` and takes the difference from the previous collection as the load
 * of that window (planPlacement's `expertLoad`). Pure functions; the coordinator does the calls.
 *
 * Each layer is routed by exactly one stage (its range's primary), so summing over workers counts
 * every routed token once. A window too small to tell a hot expert from chance (fewer than
 * MIN_TOKENS_PER_EXPERT per expert on average) decides nothing: the coordinator then keeps its
 * baseline, so the window grows until it holds enough tokens.
 */
import { sameExperts, type Plan } from '../common/cluster/plan';
import type { ExpertLoad } from './placement';

/** Average tokens per (layer, expert) a window needs before placement goes by it. */
export const MIN_TOKENS_PER_EXPERT = 16;

/** Each worker's cumulative counts as its latest Status reply gave them, by a key that names the
 * worker process (the coordinator uses id and start time, so a restart starts a new entry). */
export type RoutingCounts = ReadonlyMap<string, readonly ExpertLoad[]>;

/**
 * Tokens routed per (layer, expert) between two collections, summed over the workers in
 * `current`, in layer then expert order, zeros left out. A worker new to `previous` counts from
 * zero. Counts only grow, so a worker with any count lower than before, or one missing, has
 * restarted: all of its current counts are new.
 */
export function loadDelta(previous: RoutingCounts, current: RoutingCounts): ExpertLoad[] {
  const sum = new Map<string, ExpertLoad>();
  for (const [worker, counts] of current) {
    const before = new Map((previous.get(worker) ?? []).map((c) => [keyOf(c), c.tokens]));
    const now = new Map(counts.map((c) => [keyOf(c), c.tokens]));
    const restarted = [...before].some(([key, tokens]) => (now.get(key) ?? 0) < tokens);
    for (const c of counts) {
      const tokens = c.tokens - (restarted ? 0 : (before.get(keyOf(c)) ?? 0));
      const entry = sum.get(keyOf(c)) ?? { layer: c.layer, expert: c.expert, tokens: 0 };
      sum.set(keyOf(c), { ...entry, tokens: entry.tokens + tokens });
    }
  }
  return [...sum.values()].filter((l) => l.tokens > 0).sort((a, b) => a.layer - b.layer || a.expert - b.expert);
}

/**
 * The baseline for the next window: this collection's counts, plus the previous ones of members
 * that did not answer this time (their tokens then count in the window in which they answer
 * again). Workers that are no longer members are dropped.
 */
export function nextBaseline(previous: RoutingCounts, current: RoutingCounts, members: Iterable<string>): Map<string, readonly ExpertLoad[]> {
  const next = new Map<string, readonly ExpertLoad[]>();
  for (const id of members) {
    const counts = current.get(id) ?? previous.get(id);
    if (counts !== undefined) next.set(id, counts);
  }
  return next;
}

/** Whether `load` holds enough tokens to place `plan`'s experts by (MIN_TOKENS_PER_EXPERT). */
export function significant(load: readonly ExpertLoad[], plan: Plan): boolean {
  const experts = plan.experts?.length ?? 0;
  return experts > 0 && load.reduce((n, l) => n + l.tokens, 0) >= MIN_TOKENS_PER_EXPERT * experts;
}

/**
 * Whether a window's load calls for a new plan: it is significant, and the placement made with
 * it (`candidate`, from the plan in force as `previous`) places experts differently from `plan`.
 * Stages are not compared: a load only decides experts, and membership changes re-plan anyway.
 */
export function shouldRebalance(plan: Plan, candidate: Plan, load: readonly ExpertLoad[]): boolean {
  return significant(load, plan) && !sameExperts(plan, candidate);
}

function keyOf(l: ExpertLoad): string {
  return `${l.layer}:${l.expert}`;
}
