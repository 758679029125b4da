/**
 * The leader's plan lifecycle, and the pipeline it serves (the scheduler's PipelineSource):
 *
 *   members change -> (debounce) -> planPlacement -> publish epoch n+1 in a transaction ->
 *   wait until its workers have loaded it -> [commit a hand-over] -> RemotePipeline.open ->
 *   the scheduler moves every sequence onto it.
 *
 * A data path that breaks triggers the same cycle, except when the probe after it found every
 * worker of the plan answering (a connection was reset, a stream dropped): then the same plan's
 * data path is reopened, without a new epoch (its sequences replay on it, as on any new
 * pipeline). Re-plans run one at a time; reasons that arrive meanwhile are planned for together
 * once the running one ends.
 */
import type { MemberInfo } from '../common/cluster/member';
import { samePlacement, workersOf, type Plan } from '../common/cluster/plan';
import type { PlanStore } from '../common/cluster/plan-store';
import { FailedPreconditionError, UnavailableError, asBoraError, type BoraError } from '../common/errors';
import type { Pipeline } from '../common/generation/pipeline';
import type { PipelineSource, Scheduler } from '../common/generation/scheduler';
import type { WorkerId } from '../common/ids';
import type { ModelConfig } from '../common/model/config';
import { INSECURE, type NodeSecurity } from '../common/security/node-security';
import type { CoordinatorMetrics, ReshardReason } from './coordinator-metrics';
import { commitHandover, handoverFrom } from './handover';
import { pipelineDepth, type MicroBatches } from './pipeline-depth';
import { planPlacement, type ExpertLoad, type ExpertsMode, type ModelFootprint } from './placement';
import { RemotePipeline } from './remote-pipeline';
import type { AuditLog } from '../common/security/audit';
import type { Logger } from '../common/logging/logger';

/** After a failed attempt, the next one waits this long. */
const RETRY_DELAY_MS = 1000;
/**
 * A plan's data path is reopened in place (no new epoch) at most once per this long: a path that
 * breaks again at once has a cause that a fresh plan must look at (e.g. a fenced worker).
 */
const REOPEN_INTERVAL_MS = 5000;
/** Which reason a plan is made for when several are pending: a join (which rebalances) first. */
const REASON_PRIORITY: readonly ReshardReason[] = ['join', 'leave', 'failure', 'update', 'operator'];

/**
 * Where the latest plan stands. `adopted`: published by a previous leader (or by a rival in a
 * race this coordinator lost); this one plans on top of it. `loading`: published here, its
 * workers are loading it (`abort` ends the wait when one of them leaves). `loaded`: every worker
 * has it; the hand-over commits and its pipeline opens, after which it serves.
 */
export type PlanPhase =
  | { readonly kind: 'none' }
  | { readonly kind: 'adopted'; readonly plan: Plan }
  | { readonly kind: 'loading'; readonly plan: Plan; readonly abort: (err: Error) => void }
  | { readonly kind: 'loaded'; readonly plan: Plan };

export interface PlanLifecycleOptions {
  readonly modelId: string;
  /** The registered version (NAME@VERSION) the plans serve, when there is one. */
  readonly modelVersion?: string;
  readonly config: ModelConfig;
  readonly expertsMode: ExpertsMode;
  readonly replicas: 1 | 2;
  /** Planned changes (join, drain, rebalance) move KV caches instead of replaying. */
  readonly handover: boolean;
  readonly replanDebounceMs: number;
  readonly readyTimeoutMs: number;
  readonly stepTimeoutMs: number;
  readonly keepaliveTimeMs: number;
  readonly keepaliveTimeoutMs: number;
  readonly microBatches: MicroBatches;
  readonly plans: PlanStore;
  readonly scheduler: () => Scheduler;
  readonly metrics: CoordinatorMetrics;
  /** Only the leader plans. */
  readonly isLeader: () => boolean;
  readonly etcdOutage: () => boolean;
  readonly members: () => ReadonlyMap<WorkerId, MemberInfo>;
  /** Members placement may use now (not draining, not suspected). */
  readonly usable: (member: MemberInfo) => boolean;
  readonly footprint: (members: readonly MemberInfo[]) => ModelFootprint;
  readonly expertLoad: () => readonly ExpertLoad[] | undefined;
  /** The serving pipeline broke: find out why (probe) and plan (`schedule('failure', 0)`). */
  readonly dataPathFailed: () => void;
  /** Each published plan is recorded here. */
  readonly audit?: AuditLog;
  readonly log: Logger;
  /** A plan was published: its epoch now stamps every log line of this node. */
  readonly onEpoch?: (epoch: number) => void;
  /** How workers are dialed (CommitPlan, the data path); plaintext when absent. */
  readonly security?: NodeSecurity;
}

export class PlanLifecycle implements PipelineSource {
  private phase: PlanPhase = { kind: 'none' };
  private pipeline: RemotePipeline | undefined;
  private waiters: { after: number | undefined; resolve(p: Pipeline): void }[] = [];
  /** The members' addresses when the latest plan was made (a moved worker needs a new data path). */
  private planAddresses = new Map<WorkerId, string>();
  private readonly pendingReasons = new Set<ReshardReason>();
  private debounce: NodeJS.Timeout | undefined;
  /** The re-plan loop while it runs. */
  private running: Promise<void> | undefined;
  private stopped = false;
  /** When the latest plan's data path was last reopened in place, and that plan's epoch. */
  private reopened = { epoch: 0, atMs: -Infinity };

  constructor(private readonly options: PlanLifecycleOptions) {}

  /** The latest plan, published here or adopted. */
  get plan(): Plan | undefined {
    return this.phase.kind === 'none' ? undefined : this.phase.plan;
  }

  /** Every worker of the latest plan has loaded it. */
  get planLoaded(): boolean {
    return this.phase.kind === 'loaded';
  }

  /** A hand-over plan is loading beside the serving one. */
  get loadingHandover(): boolean {
    return this.phase.kind === 'loading' && this.phase.plan.handover !== undefined;
  }

  /** No re-plan is scheduled or running: the plan covers the membership as last seen. */
  get idle(): boolean {
    return this.debounce === undefined && this.running === undefined;
  }

  /** The pipeline serving now, broken or not. */
  get serving(): RemotePipeline | undefined {
    return this.pipeline;
  }

  /** Takes over the plan in etcd (a new leader builds on what its predecessor published). */
  async adopt(): Promise<Plan | undefined> {
    const plan = await this.options.plans.current();
    this.phase = plan === undefined ? { kind: 'none' } : { kind: 'adopted', plan };
    return plan;
  }

  /** Plans again after `delayMs` (debounced: changes closer together are planned once). */
  schedule(reason: ReshardReason, delayMs = this.options.replanDebounceMs): void {
    if (this.stopped) return;
    this.options.metrics.setMembers(this.options.members().size);
    this.pendingReasons.add(reason);
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      this.running ??= this.replanLoop().finally(() => {
        this.running = undefined;
      });
    }, delayMs);
  }

  /** A worker left: if the plan being loaded needs it, stop waiting (the next plan will not). */
  onWorkerLeft(worker: WorkerId): void {
    if (this.phase.kind === 'loading' && workersOf(this.phase.plan).includes(worker)) {
      this.phase.abort(new UnavailableError(`worker ${worker} left while its plan was loading`));
    }
  }

  /** This coordinator no longer leads: its pipeline closes; the plan stays for a later term. */
  closePipeline(): void {
    this.pipeline?.close();
    this.pipeline = undefined;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.debounce);
    this.closePipeline();
  }

  // ---- PipelineSource ----

  current(): Pipeline | undefined {
    return this.pipeline !== undefined && !this.pipeline.isBroken ? this.pipeline : undefined;
  }

  next(afterEpoch: number | undefined): Promise<Pipeline> {
    const ready = this.current();
    if (ready !== undefined && (afterEpoch === undefined || ready.epoch > afterEpoch)) return Promise.resolve(ready);
    return new Promise((resolve) => this.waiters.push({ after: afterEpoch, resolve }));
  }

  reportFailure(pipeline: Pipeline, err: BoraError): void {
    this.options.log.warn(`data path of epoch ${pipeline.epoch} failed: ${err.message}`);
    this.options.dataPathFailed();
  }

  // ---- planning ----

  private async replanLoop(): Promise<void> {
    while (this.pendingReasons.size > 0 && !this.stopped && this.debounce === undefined) {
      const reason = REASON_PRIORITY.find((r) => this.pendingReasons.has(r)) ?? 'operator';
      this.pendingReasons.clear();
      try {
        await this.replan(reason);
      } catch (err) {
        this.options.log.error(`planning failed: ${asBoraError(err).message}; retrying`);
        this.pendingReasons.add(reason);
        await new Promise((r) => setTimeout(r, RETRY_DELAY_MS));
      }
    }
  }

  private async replan(reason: ReshardReason): Promise<void> {
    const o = this.options;
    if (!o.isLeader()) return; // standbys do not plan
    const members = [...o.members().values()].filter(o.usable);
    if (members.length === 0) {
      o.log.warn('no workers: waiting for one to register');
      return;
    }
    const previous = this.plan;
    const serving = this.current();
    // A join rebalances over everyone (the newcomer gets layers); other changes keep the ranges
    // of the workers still present, so a load update or a lost worker moves as little as possible.
    const placed = planPlacement({
      members,
      model: o.footprint(members),
      previous: reason === 'join' ? undefined : previous,
      epoch: (previous?.epoch ?? 0) + 1,
      modelId: o.modelId,
      modelVersion: o.modelVersion,
      expertsMode: o.expertsMode,
      replicas: o.replicas,
      expertLoad: o.expertLoad(),
    });
    if (previous !== undefined && serving !== undefined && samePlacement(previous, placed) && this.addressesUnchanged(previous, members)) return;
    if (reason === 'failure' && previous !== undefined && this.mayReopen(previous) && samePlacement(previous, placed) && this.addressesUnchanged(previous, members)) {
      // Every worker of the plan is usable (none suspected after the probe) and where it was.
      this.reopened = { epoch: previous.epoch, atMs: performance.now() };
      o.log(`reopening the data path of plan ${previous.epoch}: every worker answers`);
      await this.open(previous, undefined, members);
      return;
    }
    // A planned change while the pipeline of `previous` serves: move the caches (handover.ts).
    const planned = reason === 'join' || reason === 'operator' || reason === 'update';
    const handover = planned && previous !== undefined && o.handover && serving?.epoch === previous.epoch;
    const candidate = handover ? { ...placed, handover: handoverFrom(previous) } : placed;

    try {
      await o.plans.publish(candidate);
    } catch (err) {
      if (err instanceof FailedPreconditionError) {
        await this.adopt(); // another coordinator published; decide again on top of its plan
        this.pendingReasons.add(reason);
        return;
      }
      throw err;
    }
    this.planAddresses = new Map(members.map((m) => [m.id, m.address]));
    o.metrics.setPlanEpoch(candidate.epoch);
    o.onEpoch?.(candidate.epoch);
    o.metrics.countReshard(reason);
    const layout = candidate.stages.map((s) => `${s.workers[0]}[${s.range.start},${s.range.end})`).join(' ');
    o.log.info(`published plan ${candidate.epoch} (${reason}): ${layout}`);
    o.audit?.record({ who: 'coordinator', what: `plan change to epoch ${candidate.epoch}`, outcome: 'ok', detail: { reason, stages: layout, handover: candidate.handover !== undefined } });

    if (!(await this.waitLoaded(candidate))) return; // superseded while loading
    await this.open(candidate, previous, members);
  }

  /** Waits for every worker of `plan` to load it; false when a newer plan superseded it. */
  private async waitLoaded(plan: Plan): Promise<boolean> {
    await new Promise<void>((resolve, reject) => {
      this.phase = { kind: 'loading', plan, abort: reject };
      this.options.plans.waitReady(plan.epoch, workersOf(plan), this.options.readyTimeoutMs).then(resolve, reject);
    });
    if (this.plan !== plan) return false;
    this.phase = { kind: 'loaded', plan };
    return true;
  }

  /** Commits a hand-over (if `plan` is one), opens the plan's data path and moves generation onto it. */
  private async open(plan: Plan, previous: Plan | undefined, members: readonly MemberInfo[]): Promise<void> {
    const o = this.options;
    const scheduler = o.scheduler();
    const holding = plan.handover !== undefined && previous !== undefined;
    const heldFromMs = performance.now();
    let keepPositions = false;
    let pipeline: RemotePipeline;
    try {
      if (holding) {
        const outcome = await commitHandover(previous, plan, await scheduler.quiesce(), (w) => o.members().get(w)?.address, o.security ?? INSECURE);
        keepPositions = outcome.migrated;
        o.log.info(`hand-over to plan ${plan.epoch}: ${outcome.migrated ? '' : 'replaying instead: '}${outcome.detail}`);
      }
      const addresses = plan.stages.map((s) => addressOf(s.workers[0], members));
      pipeline = await RemotePipeline.open({
        epoch: plan.epoch,
        stageAddresses: addresses,
        depth: pipelineDepth(addresses, o.microBatches),
        hiddenSize: o.config.hiddenSize,
        vocabSize: o.config.vocabSize,
        stepTimeoutMs: o.stepTimeoutMs,
        keepaliveTimeMs: o.keepaliveTimeMs,
        keepaliveTimeoutMs: o.keepaliveTimeoutMs,
        etcdOutage: o.etcdOutage,
        security: o.security,
      });
    } catch (err) {
      if (holding) scheduler.resume(); // the old pipeline fails on its own and is replaced
      throw err;
    }
    const old = this.pipeline;
    this.pipeline = pipeline;
    old?.close();
    scheduler.switchTo(pipeline, keepPositions);
    if (holding) {
      const heldMs = performance.now() - heldFromMs;
      o.metrics.observeHandoverPause(heldMs / 1000);
      o.log.info(`generation was held ${heldMs.toFixed(0)} ms for the hand-over`);
    }
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.resolve(pipeline);
    o.log.info(`plan ${plan.epoch} is serving`);
  }

  /** Whether `plan`'s broken data path may be reopened in place: it served, and was not just reopened. */
  private mayReopen(plan: Plan): boolean {
    if (this.phase.kind !== 'loaded' || this.phase.plan !== plan || this.pipeline?.epoch !== plan.epoch || !this.pipeline.isBroken) return false;
    return this.reopened.epoch !== plan.epoch || performance.now() - this.reopened.atMs >= REOPEN_INTERVAL_MS;
  }

  private addressesUnchanged(plan: Plan, members: readonly MemberInfo[]): boolean {
    return workersOf(plan).every((w) => members.find((m) => m.id === w)?.address === this.planAddresses.get(w));
  }
}

function addressOf(worker: WorkerId, members: readonly MemberInfo[]): string {
  const member = members.find((m) => m.id === worker);
  if (member === undefined) throw new UnavailableError(`worker ${worker} left while plan was loading`);
  return member.address;
}
