/**
 * Expert placement by observed routing, on the coordinator's clock: every interval it asks every
 * worker for its routing counts, takes the window since the last significant collection as the
 * expert load (expert-load.ts decides what counts), and asks for a re-plan when placing with that
 * load (keeping the plan in force, as an 'update' re-plan does) places experts differently.
 */
import type { MemberInfo } from '../common/cluster/member';
import type { Plan } from '../common/cluster/plan';
import { asBoraError } from '../common/errors';
import type { WorkerStatusReply } from '../common/wire/messages';
import { loadDelta, nextBaseline, shouldRebalance, significant, type RoutingCounts } from './expert-load';
import { planPlacement, type ExpertLoad, type ModelFootprint, type PlacementInput } from './placement';
import type { Logger } from '../common/logging/logger';

export const DEFAULT_EXPERT_REBALANCE_MS = 60_000;

export interface ExpertRebalancerOptions {
  readonly intervalMs: number;
  /** The model's footprint on these workers (it depends on how they hold weights). */
  readonly model: (members: readonly MemberInfo[]) => ModelFootprint;
  /** The placement settings a re-plan uses (the coordinator's). */
  readonly placement: Pick<PlacementInput, 'modelId' | 'modelVersion' | 'expertsMode' | 'replicas'>;
  /** The plan in force, when this coordinator leads. */
  plan(): Plan | undefined;
  isLeader(): boolean;
  /** Every registered worker, and which of them a plan may use (not draining, not suspect). */
  members(): MemberInfo[];
  usable(member: MemberInfo): boolean;
  statusOf(address: string): Promise<WorkerStatusReply | undefined>;
  /** The load changes the placement: plan again (it reads `load`). */
  replan(): void;
  readonly log: Logger;
}

export class ExpertRebalancer {
  private timer: NodeJS.Timeout | undefined;
  private collecting = false;
  /** Each worker process's cumulative routing counts at the last significant collection. */
  private baseline: RoutingCounts = new Map();
  /** The latest significant window: every plan from then on places experts by it. */
  load: ExpertLoad[] | undefined;

  constructor(private readonly o: ExpertRebalancerOptions) {}

  start(): void {
    if (this.o.intervalMs <= 0) return;
    this.timer = setInterval(() => void this.collect(), this.o.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async collect(): Promise<void> {
    const plan = this.o.plan();
    if (this.collecting || plan === undefined || !this.o.isLeader()) return;
    this.collecting = true;
    try {
      const all = this.o.members();
      // Counts are kept per process: a worker that restarted under the same id counts from zero.
      const key = (m: MemberInfo): string => `${m.id}@${m.startedAtMs}`;
      const replies = await Promise.all(all.map(async (m) => ({ key: key(m), counts: (await this.o.statusOf(m.address))?.expertTokens })));
      const current = new Map(replies.flatMap((r) => (r.counts === undefined ? [] : [[r.key, r.counts] as const])));
      const members = all.filter((m) => this.o.usable(m));
      const model = this.o.model(members);
      const load = loadDelta(this.baseline, current).filter((l) => l.layer < model.numLayers && l.expert < model.numExperts);
      if (!significant(load, plan)) return; // too few tokens yet: the window grows until they are enough
      this.baseline = nextBaseline(this.baseline, current, all.map(key));
      this.load = load;
      if (members.length === 0 || this.o.plan() !== plan) return;
      const candidate = planPlacement({ ...this.o.placement, members, model, previous: plan, epoch: plan.epoch + 1, expertLoad: load });
      if (!shouldRebalance(plan, candidate, load)) return;
      this.o.log.info(`routing load changes the expert placement (${load.reduce((n, l) => n + l.tokens, 0)} expert tokens this window): re-planning`);
      this.o.replan();
    } catch (err) {
      this.o.log.warn(`collecting expert load failed: ${asBoraError(err).message}`);
    } finally {
      this.collecting = false;
    }
  }
}
