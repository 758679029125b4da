/**
 * What a worker must do to serve a plan, decided apart from doing it: which stages to load, which
 * of those already loaded to keep, which to retire, and whether its expert set changes. Pure, so
 * that every case is a row in a table test (test/unit/worker/reconcile.test.ts); worker-node.ts
 * carries the result out.
 */
import { assignmentsOf, type Plan } from '../common/cluster/plan';
import type { LayerRange, WorkerId } from '../common/ids';

/** A stage engine's identity: the same key is the same weights (the experts' placement aside). */
export function stageKey(modelId: string, range: LayerRange, expertsSpread: boolean): string {
  return `${modelId}:${range.start}-${range.end}${expertsSpread ? ':spread' : ''}`;
}

/** A range of the plan that this worker holds. */
export interface StageNeed {
  readonly key: string;
  /** The stage's index in the plan. */
  readonly index: number;
  readonly range: LayerRange;
  /** Served by this worker; otherwise held as a warm standby. */
  readonly primary: boolean;
  /** Already loaded here (kept), or to be loaded. */
  readonly loaded: boolean;
}

export interface Reconciliation {
  /** Primaries, in stage order: loaded before the worker reports ready. */
  readonly primaries: readonly StageNeed[];
  /** Standbys, in stage order: loaded after it reports ready, in the background. */
  readonly standbys: readonly StageNeed[];
  /** Loaded stages this plan does not hold. */
  readonly retire: readonly string[];
  /** The experts placed on this worker (empty: none), and their identity. */
  readonly experts: { readonly key: string; readonly holdings: ReturnType<typeof assignmentsOf>['experts'] } | undefined;
  /** The expert set differs from the one loaded (`experts` undefined: the loaded one goes). */
  readonly expertsChange: boolean;
}

export interface LoadedState {
  /** Keys of every stage engine loaded here, served or standby. */
  readonly stages: ReadonlySet<string>;
  /** Key of the loaded expert set, if any. */
  readonly expertsKey: string | undefined;
}

export function reconcile(plan: Plan, loaded: LoadedState, id: WorkerId): Reconciliation {
  const spread = plan.experts !== undefined;
  const needs = plan.stages.flatMap((s, index): StageNeed[] => {
    if (!s.workers.includes(id)) return [];
    const key = stageKey(plan.modelId, s.range, spread);
    return [{ key, index, range: s.range, primary: s.workers[0] === id, loaded: loaded.stages.has(key) }];
  });
  const held = new Set(needs.map((n) => n.key));
  const holdings = assignmentsOf(plan, id).experts;
  const experts = holdings.length === 0 ? undefined : { key: JSON.stringify([plan.modelId, holdings]), holdings };
  return {
    primaries: needs.filter((n) => n.primary),
    standbys: needs.filter((n) => !n.primary),
    retire: [...loaded.stages].filter((key) => !held.has(key)),
    experts,
    expertsChange: experts?.key !== loaded.expertsKey,
  };
}
