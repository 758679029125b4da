/**
 * The workers allowed to send this worker frames, expert calls and cache fetches
 * (worker-access.ts): those of the plan it serves and of the latest plan, with the latter's
 * hand-over sources (during a hand-over the new plan's workers copy caches while the old plan
 * still serves). Asked on every chunk of a Forward stream, so the set is computed once per pair
 * of plans.
 */
import { workersOf, type Plan } from '../common/cluster/plan';
import type { WorkerId } from '../common/ids';

export class PlanPeers {
  private cache: { served: Plan | undefined; latest: Plan | undefined; workers: ReadonlySet<WorkerId> } | undefined;

  of(served: Plan | undefined, latest: Plan | undefined): ReadonlySet<WorkerId> {
    const cached = this.cache;
    if (cached !== undefined && cached.served === served && cached.latest === latest) return cached.workers;
    const workers = new Set<WorkerId>();
    for (const plan of [served, latest]) {
      if (plan === undefined) continue;
      for (const w of workersOf(plan)) workers.add(w);
      for (const s of plan.handover?.stages ?? []) workers.add(s.worker);
    }
    this.cache = { served, latest, workers };
    return workers;
  }
}
