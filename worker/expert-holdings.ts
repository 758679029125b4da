/**
 * A worker's part in spreading experts: the placement table its stages dispatch by, the experts it
 * serves to other stages (timed), and the dispatch figures its engine threads report.
 */
import type { Plan } from '../common/cluster/plan';
import type { ExpertBackend } from '../common/engine/experts';
import type { LayerRange, WorkerId } from '../common/ids';
import type { RemoteExpertsSpec } from './engine-protocol';
import type { ThreadedExperts } from './engine-thread';
import type { ExpertDispatchStats, RoutedTokens } from './expert-stats';
import type { WorkerMetrics } from './worker-metrics';
import type { Logger } from '../common/logging/logger';

export interface HolderLookup {
  /** This worker's own address, and the experts it holds (dispatched to without the network). */
  readonly self: string;
  readonly own: ThreadedExperts | undefined;
  readonly addressOf: (worker: WorkerId) => Promise<string>;
  readonly log: Logger;
}

/**
 * The expert placement of the stage's layers with each holder's address. A holder with no
 * member record (gone since the plan was made) is left out: its experts' other copies serve.
 */
export async function remoteExpertsSpec(plan: Plan, range: LayerRange, lookup: HolderLookup): Promise<RemoteExpertsSpec> {
  const placements = (plan.experts ?? []).filter((p) => p.layer >= range.start && p.layer < range.end);
  const ids = [...new Set(placements.flatMap((p) => p.workers))];
  const addresses = new Map<WorkerId, string>();
  for (const [i, address] of (await Promise.all(ids.map((w) => lookup.addressOf(w).catch(() => undefined)))).entries()) {
    if (address === undefined) lookup.log.warn(`expert holder ${ids[i]} of plan ${plan.epoch} is not registered; its replicas serve its experts`);
    else addresses.set(ids[i], address);
  }
  const table = placements.map((p) => ({ layer: p.layer, expert: p.expert, addresses: p.workers.flatMap((w) => addresses.get(w) ?? []) }));
  return { epoch: plan.epoch, table, ...(lookup.own === undefined ? {} : { self: { address: lookup.self, experts: lookup.own.handle } }) };
}

/** The experts served to other stages over RunExperts, timed for bora_expert_run_seconds. */
export function meteredExperts(experts: ThreadedExperts, metrics: WorkerMetrics): ExpertBackend {
  return {
    run: async (layer, calls) => {
      const started = performance.now();
      try {
        return await experts.run(layer, calls);
      } finally {
        metrics.observeExpertRun((performance.now() - started) / 1000);
      }
    },
  };
}

/** An engine thread's dispatch figures: routed tokens (for the Status reply), metrics, failures logged. */
export function recordExpertStats(stats: ExpertDispatchStats, routed: RoutedTokens, metrics: WorkerMetrics, log: Logger): void {
  routed.add(stats.tokens);
  for (const t of stats.tokens) metrics.countExpertTokens(t.layer, t.expert, t.tokens);
  for (const seconds of stats.dispatchSeconds) metrics.observeExpertDispatch(seconds);
  for (const [role, calls] of Object.entries(stats.served) as [keyof typeof stats.served, number][]) if (calls > 0) metrics.countExpertCall(role, calls);
  if (stats.holderFailures > 0) {
    metrics.countExpertHolderFailures(stats.holderFailures);
    log.warn(`${stats.holderFailures} expert call(s) moved to a replica; latest: ${stats.lastFailure ?? 'unknown'}`);
  }
}
