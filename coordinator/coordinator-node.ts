/**
 * The coordinator: follows membership in etcd, decides placements (a pure function), publishes
 * each plan under the next epoch, waits for its workers to load it, opens the data path for it,
 * and serves the client API on top of a continuous-batching scheduler.
 *
 * Plan lifecycle: members change -> (debounce) -> planPlacement -> publish epoch n+1 in a
 * transaction -> waitReady(n+1) -> RemotePipeline.open -> the scheduler moves every sequence onto
 * it (replaying their tokens). A data path that breaks triggers the same cycle.
 */
import * as grpc from '@grpc/grpc-js';
import type { Etcd3 } from 'etcd3';
import { EtcdKeys, createEtcdClient } from '../common/cluster/etcd-keys';
import type { MemberInfo } from '../common/cluster/member';
import { workersOf, type Plan } from '../common/cluster/plan';
import { BoraError, FailedPreconditionError, UnavailableError, asBoraError } from '../common/errors';
import { Generator } from '../common/generation/generator';
import type { GenerationEvent } from '../common/generation/request';
import type { Pipeline } from '../common/generation/pipeline';
import { Scheduler, type PipelineSource } from '../common/generation/scheduler';
import { startMetricsServer, type MetricsServer } from '../common/metrics/metrics-server';
import { CoordinatorMetrics, type ReshardReason } from '../common/metrics/coordinator-metrics';
import { Checkpoint } from '../common/model/checkpoint';
import { CpuPool } from '../common/pool/cpu-pool';
import { loadTokenizer, type Tokenizer } from '../common/tokenizer/tokenizer';
import type { ClusterStatus, WorkerStatusReply } from '../common/wire/messages';
import { boraProto, channelOptions, withWorkerClient } from '../common/wire/proto';
import { bindServer, type BoundServer } from '../worker/worker-server';
import { modelFootprint, weightBytesFor } from './footprint';
import { pipelineDepth, type MicroBatches } from './pipeline-depth';
import { addInferenceService } from './inference-service';
import { Leadership } from './leadership';
import { commitHandover, handoverFrom } from './handover';
import { MembershipWatch } from './membership-watch';
import { DEFAULT_EXPERT_REBALANCE_MS, ExpertRebalancer } from './expert-rebalancer';
import { planPlacement, type ExpertsMode, type ModelFootprint } from './placement';
import { DTYPE_BYTES, isStorageDtype } from '../common/model/dtype';
import { attentionSpecs } from '../common/model/weights';
import { PlanStore } from '../common/cluster/plan-store';
import { RemotePipeline } from './remote-pipeline';
import { weightServiceHandlers } from './weight-service';

export interface CoordinatorOptions {
  readonly etcdUrl: string;
  readonly listenHost: string;
  readonly listenPort: number;
  readonly advertiseHost?: string;
  readonly modelDir: string;
  readonly modelId: string;
  readonly expertsMode: ExpertsMode;
  /** 2: each layer range also on a standby worker when memory allows (failover without a load). */
  readonly replicas: 1 | 2;
  readonly leaseTtlMs: number;
  readonly metricsPort?: number;
  readonly keysPrefix?: string;
  /** A micro-batch not back within this long breaks the data path (a hung or paused stage). */
  readonly stepTimeoutMs: number;
  /** How long workers get to load a new plan. */
  readonly readyTimeoutMs: number;
  /** Membership changes closer together than this are planned once. */
  readonly replanDebounceMs: number;
  readonly keepaliveTimeMs: number;
  readonly keepaliveTimeoutMs: number;
  readonly maxBatchTokens: number;
  readonly maxBatchSequences: number;
  /** Planned changes (join, drain, rebalance) move KV caches instead of replaying; default true. */
  readonly handover?: boolean;
  readonly log?: (message: string) => void;
  /** "spread" only: how often the workers' routing counts are collected to place experts by
   * (hot experts get more copies); 0 disables. Default DEFAULT_EXPERT_REBALANCE_MS (expert-rebalancer.ts). */
  readonly expertRebalanceIntervalMs?: number;
  /** Micro-batches in flight per pipeline; 'auto' (default): one per host among the stages. */
  readonly microBatches?: MicroBatches;
}

/** A worker that does not answer a status probe within this long is a suspect. */
const PROBE_TIMEOUT_MS = 500;
/** ... while a hand-over plan loads: workers are then creating sessions beside serving, and a
 * slow answer from a starved process must not end the hand-over in a failure and a replay. */
const LOADING_PROBE_TIMEOUT_MS = 1500;
/** How long the Status RPC waits for each worker's own status. */
const STATUS_TIMEOUT_MS = 1000;
/** A micro-batch out longer than this many typical steps (and at least STALL_MIN_MS) is a stall. */
const STALL_STEPS = 4;
const STALL_MIN_MS = 600;
const WATCHDOG_INTERVAL_MS = 100;

/** A worker's status, or undefined when it does not answer within `timeoutMs`. */
function workerStatus(address: string, timeoutMs: number): Promise<WorkerStatusReply | undefined> {
  return withWorkerClient<WorkerStatusReply | undefined>(
    address,
    (client) =>
      new Promise((resolve) => {
        client.status({}, { deadline: Date.now() + timeoutMs }, (err, reply) => resolve(err === null ? reply : undefined));
      }),
  );
}

export class CoordinatorNode implements PipelineSource {
  readonly metrics = new CoordinatorMetrics();
  private readonly log: (message: string) => void;
  private readonly keys: EtcdKeys;
  private readonly etcd: Etcd3;
  private readonly membership: MembershipWatch;
  private readonly plans: PlanStore;
  private ckpt!: Checkpoint;
  private tokenizer!: Tokenizer;
  private pool!: CpuPool;
  private scheduler!: Scheduler;
  private generator!: Generator;
  private server: BoundServer | undefined;
  private metricsServer: MetricsServer | undefined;
  private leadership: Leadership | undefined;
  private membershipStarted = false;
  /** Experts spread: places them by observed routing load. */
  private rebalancer: ExpertRebalancer | undefined;
  private abortWait: ((err: Error) => void) | undefined;
  private plan: Plan | undefined;
  private readyEpoch = 0;
  private pipeline: RemotePipeline | undefined;
  private pipelineWaiters: { after: number | undefined; resolve(p: Pipeline): void }[] = [];
  private replanTimer: NodeJS.Timeout | undefined;
  private readonly pendingReasons = new Set<ReshardReason>();
  /** Workers that did not answer a probe after a failure, left out of plans for a while. */
  private readonly suspects = new Set<string>();
  private watchdog: NodeJS.Timeout | undefined;
  private watchdogBusy = false;
  private lastProbeAtMs = -Infinity;
  /** Workers being drained: placement leaves them out until they leave the cluster. */
  private readonly draining = new Set<string>();
  private replanning: Promise<void> = Promise.resolve();
  private replanRequested = false;
  /** Re-plans scheduled (debouncing) or running; 0 once the plan covers the current membership. */
  private replansPending = 0;
  private stopped = false;

  constructor(private readonly options: CoordinatorOptions) {
    this.log = options.log ?? ((m) => console.error(`${new Date().toISOString()} [coordinator] ${m}`));
    this.keys = new EtcdKeys(options.keysPrefix);
    this.etcd = createEtcdClient({ hosts: options.etcdUrl });
    this.membership = new MembershipWatch({ client: this.etcd, keys: this.keys, log: this.log });
    this.plans = new PlanStore({ client: this.etcd, keys: this.keys, log: this.log });
  }

  get address(): string {
    return this.server!.address;
  }

  async start(): Promise<void> {
    const o = this.options;
    this.ckpt = await Checkpoint.open(o.modelDir);
    this.tokenizer = await loadTokenizer(o.modelDir, this.ckpt.config);
    this.pool = await CpuPool.create({ threads: 1 });
    this.scheduler = new Scheduler(this, {
      maxBatchTokens: o.maxBatchTokens,
      maxBatchSequences: o.maxBatchSequences,
      sample: (logits, params, step) => this.pool.sample(logits, params, step),
    });
    this.metrics.readQueueFrom(() => ({ active: this.scheduler.activeSequences, waiting: this.scheduler.waitingSequences }));
    this.generator = new Generator(this.scheduler, this.tokenizer, this.ckpt.config, {
      encode: (text) => this.pool.encode(o.modelDir, text, this.ckpt.config),
    });

    const server = new grpc.Server(channelOptions(o.keepaliveTimeMs, o.keepaliveTimeoutMs));
    addInferenceService(server, {
      generator: () => this.generator,
      tokenizer: this.tokenizer,
      modelId: o.modelId,
      status: () => this.status(),
      onOutcome: (outcome) => this.metrics.countRequest(outcome),
      onEvent: this.eventMetrics(),
      checkServing: () => this.checkServing(),
      hasPipeline: () => this.current() !== undefined,
      drain: (workerId) => this.drain(workerId),
    });
    server.addService(boraProto().WeightSource.service, weightServiceHandlers(this.ckpt, o.modelId));
    const bound = await bindServer(server, o.listenHost, o.listenPort);
    this.server = { ...bound, address: `${o.advertiseHost ?? o.listenHost}:${bound.port}` };
    if (o.metricsPort !== undefined) this.metricsServer = await startMetricsServer(this.metrics.registry, o.listenHost, o.metricsPort);

    this.membership.onEvent((event) => {
      // Load figures change all the time; only what placement depends on is worth a new plan.
      if (event.type === 'update' && event.member.memoryBytes === event.previous.memoryBytes && event.member.address === event.previous.address) return;
      if (event.type === 'leave') {
        this.onWorkerLeft(event.member.id);
        this.draining.delete(event.member.id);
        this.suspects.delete(event.member.id);
      }
      this.scheduleReplan(event.type);
    });
    this.leadership = new Leadership({ client: this.etcd, keys: this.keys, address: this.address, ttlMs: o.leaseTtlMs, log: this.log });
    this.leadership.on('elected', () => {
      this.becomeLeader().catch((err: unknown) => this.log(`taking over failed: ${asBoraError(err).message}`));
    });
    this.leadership.on('demoted', (reason) => this.stepDown(reason));
    this.leadership.start();
    this.watchdog = setInterval(() => void this.watchStalls(), WATCHDOG_INTERVAL_MS);
    this.watchdog.unref();
    if (o.expertsMode === 'spread') {
      this.rebalancer = new ExpertRebalancer({
        intervalMs: o.expertRebalanceIntervalMs ?? DEFAULT_EXPERT_REBALANCE_MS,
        model: (members) => this.footprint(members),
        placement: { modelId: o.modelId, expertsMode: o.expertsMode, replicas: o.replicas },
        plan: () => (this.stopped ? undefined : this.plan),
        isLeader: () => this.leadership?.isLeader() === true,
        members: () => [...this.membership.members().values()],
        usable: (m) => !this.draining.has(m.id) && !this.suspects.has(m.id),
        statusOf: (address) => workerStatus(address, STATUS_TIMEOUT_MS),
        replan: () => this.scheduleReplan('update'),
        log: this.log,
      });
      this.rebalancer.start();
    }
    this.log(`listening on ${this.address} for ${o.modelId}; campaigning for leadership`);
  }

  /**
   * Elected: rebuild the view from etcd and publish the next epoch, so that workers accept only
   * this coordinator's frames from now on (a previous leader's epoch is fenced off).
   */
  private async becomeLeader(): Promise<void> {
    this.plan = await this.plans.current();
    if (!this.membershipStarted) {
      this.membershipStarted = true;
      await this.membership.start();
    }
    this.metrics.setMembers(this.membership.members().size);
    this.scheduleReplan(this.plan === undefined ? 'join' : 'failure', 0);
    this.log(`leading: serving ${this.options.modelId} on ${this.address}`);
  }

  private stepDown(reason: string): void {
    this.log(`no longer leader (${reason}): standing by`);
    this.pipeline?.close();
    this.pipeline = undefined;
    this.scheduler.abortAll(new UnavailableError(`this coordinator stepped down: ${reason}; retry on the leader`));
  }

  /** Plans the cluster without `workerId` and resolves once that plan serves. */
  async drain(workerId: string): Promise<number> {
    if (!this.membership.members().has(workerId as never)) throw new BoraError('NOT_FOUND', `no worker "${workerId}" is registered`);
    this.draining.add(workerId);
    const current = this.current();
    if (current !== undefined && this.plan !== undefined && !workersOf(this.plan).includes(workerId as never)) return current.epoch;
    this.scheduleReplan('operator', 0);
    const pipeline = await this.next(this.plan?.epoch);
    const plan = this.plan;
    if (plan === undefined || workersOf(plan).includes(workerId as never)) throw new UnavailableError(`could not plan without ${workerId}`);
    return pipeline.epoch;
  }

  /** Throws UNAVAILABLE on a standby, so clients move on to the leader. */
  checkServing(): void {
    if (!this.leadership?.isLeader()) throw new UnavailableError('this coordinator is a standby; retry on the leader');
  }

  /** A worker of the plan being loaded left: stop waiting for it (the new plan will not need it). */
  private onWorkerLeft(worker: string): void {
    if (this.plan !== undefined && workersOf(this.plan).includes(worker as never)) this.abortWait?.(new UnavailableError(`worker ${worker} left while its plan was loading`));
  }

  // ---- PipelineSource ----

  current(): Pipeline | undefined {
    return this.pipeline !== undefined && !this.pipeline.isBroken ? this.pipeline : undefined;
  }

  next(afterEpoch: number | undefined): Promise<Pipeline> {
    const ready = this.current();
    if (ready !== undefined && (afterEpoch === undefined || ready.epoch > afterEpoch)) return Promise.resolve(ready);
    return new Promise((resolve) => this.pipelineWaiters.push({ after: afterEpoch, resolve }));
  }

  reportFailure(pipeline: Pipeline, err: BoraError): void {
    this.log(`data path of epoch ${pipeline.epoch} failed: ${err.message}`);
    // The stall watchdog has just probed when it broke the pipeline itself: plan right away.
    if (performance.now() - this.lastProbeAtMs < PROBE_TIMEOUT_MS * 2) this.scheduleReplan('failure', 0);
    else void this.probeSuspects().finally(() => this.scheduleReplan('failure', 0));
  }

  /**
   * Stall watchdog: a micro-batch that has been out far longer than a step takes (a stage
   * killed or paused mid-pipeline breaks no stream the coordinator holds) triggers a probe of
   * the plan's workers; one that does not answer breaks the pipeline, which re-plans without it.
   * A merely slow pipeline answers the probe and is left alone.
   */
  private async watchStalls(): Promise<void> {
    const pipeline = this.pipeline;
    if (pipeline === undefined || pipeline.isBroken || this.watchdogBusy) return;
    const thresholdMs = Math.max(STALL_MIN_MS, STALL_STEPS * (pipeline.typicalStepMs() ?? STALL_MIN_MS));
    if (pipeline.stalledMs() < thresholdMs) return;
    this.watchdogBusy = true;
    try {
      const before = this.suspects.size;
      await this.probeSuspects();
      if (this.suspects.size > before && this.pipeline === pipeline) {
        pipeline.fail(new UnavailableError(`a stage stopped answering (micro-batch out for ${pipeline.stalledMs().toFixed(0)} ms)`));
      }
    } finally {
      this.watchdogBusy = false;
    }
  }

  /**
   * After a data-path failure, asks every worker of the plan for its status with a short
   * deadline. One that does not answer (killed, paused, cut off) is left out of the next plan at
   * once instead of after its lease expires; with a standby holding its range the new plan then
   * needs no weight load. A suspect that is in fact alive is reconsidered after two lease TTLs.
   */
  private async probeSuspects(): Promise<void> {
    const plan = this.plan;
    if (plan === undefined) return;
    this.lastProbeAtMs = performance.now();
    const members = this.membership.members();
    await Promise.all(
      workersOf(plan).map(async (id) => {
        const member = members.get(id);
        if (member === undefined || (await this.probe(member.address))) return;
        if (this.suspects.has(id)) return;
        this.log(`worker ${id} does not answer: leaving it out of the next plan`);
        this.suspects.add(id);
        setTimeout(() => {
          this.suspects.delete(id);
          if (this.membership.members().has(id)) this.scheduleReplan('join');
        }, 2 * this.options.leaseTtlMs).unref();
      }),
    );
  }

  private async probe(address: string): Promise<boolean> {
    const loading = this.plan?.handover !== undefined && this.readyEpoch !== this.plan.epoch;
    return (await workerStatus(address, loading ? LOADING_PROBE_TIMEOUT_MS : PROBE_TIMEOUT_MS)) !== undefined;
  }

  // ---- planning ----

  private scheduleReplan(reason: ReshardReason, delayMs = this.options.replanDebounceMs): void {
    if (this.stopped) return;
    this.metrics.setMembers(this.membership.members().size);
    this.pendingReasons.add(reason);
    if (this.replanTimer === undefined) this.replansPending += 1;
    clearTimeout(this.replanTimer);
    this.replanTimer = setTimeout(() => {
      this.replanTimer = undefined;
      this.replanRequested = true;
      this.replanning = this.replanning
        .then(() => this.replanLoop())
        .finally(() => {
          this.replansPending -= 1;
        });
    }, delayMs);
  }

  /** The reason a plan is made for: a join (which rebalances) outranks the others. */
  private takeReason(): ReshardReason {
    const order: ReshardReason[] = ['join', 'leave', 'failure', 'update', 'operator'];
    const reason = order.find((r) => this.pendingReasons.has(r)) ?? 'operator';
    this.pendingReasons.clear();
    return reason;
  }

  private async replanLoop(): Promise<void> {
    while (this.replanRequested && !this.stopped) {
      this.replanRequested = false;
      const reason = this.takeReason();
      try {
        await this.replan(reason);
      } catch (err) {
        this.log(`planning failed: ${asBoraError(err).message}; retrying`);
        this.pendingReasons.add(reason);
        this.replanRequested = true;
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  /** What the model takes on these workers: stored-precision weights if all keep them so. */
  private footprint(members: readonly MemberInfo[]): ModelFootprint {
    const c = this.ckpt.config;
    const dtype = this.ckpt.entry(attentionSpecs(c, 0).q.name).dtype;
    return modelFootprint(c, weightBytesFor(members, isStorageDtype(dtype) ? DTYPE_BYTES[dtype] : 4));
  }

  private async replan(reason: ReshardReason): Promise<void> {
    if (!this.leadership?.isLeader()) return; // standbys do not plan
    const members = [...this.membership.members().values()].filter((m) => !this.draining.has(m.id) && !this.suspects.has(m.id));
    const pipelineHealthy = this.current() !== undefined;
    if (members.length === 0) {
      this.log('no workers: waiting for one to register');
      return;
    }
    const previous = this.plan;
    // A join rebalances over everyone (the newcomer gets layers); other changes keep the ranges
    // of the workers still present, so a load update or a lost worker moves as little as possible.
    const placed = planPlacement({
      members,
      model: this.footprint(members),
      previous: reason === 'join' ? undefined : previous,
      epoch: (previous?.epoch ?? 0) + 1,
      modelId: this.options.modelId,
      expertsMode: this.options.expertsMode,
      replicas: this.options.replicas,
      expertLoad: this.rebalancer?.load,
    });
    if (previous !== undefined && pipelineHealthy && samePlacement(previous, placed) && this.addressesUnchanged(previous, members)) return;
    // A planned change while the pipeline of `previous` serves: move the caches (handover.ts).
    const planned = reason === 'join' || reason === 'operator' || reason === 'update';
    const handover = planned && previous !== undefined && this.options.handover !== false && this.current()?.epoch === previous.epoch;
    const candidate = handover ? { ...placed, handover: handoverFrom(previous) } : placed;

    try {
      await this.plans.publish(candidate);
    } catch (err) {
      if (err instanceof FailedPreconditionError) {
        this.plan = await this.plans.current(); // another coordinator published; decide again on top of it
        this.pendingReasons.add(reason);
        this.replanRequested = true;
        return;
      }
      throw err;
    }
    this.plan = candidate;
    this.planAddresses = new Map(members.map((m) => [m.id as string, m.address]));
    this.metrics.setPlanEpoch(candidate.epoch);
    this.metrics.countReshard(reason);
    this.log(`published plan ${candidate.epoch} (${reason}): ${candidate.stages.map((s) => `${s.workers[0]}[${s.range.start},${s.range.end})`).join(' ')}`);

    // Waiting ends early when a worker of this plan leaves: then the next plan is needed instead.
    await Promise.race([
      this.plans.waitReady(candidate.epoch, workersOf(candidate), this.options.readyTimeoutMs),
      new Promise<never>((_, reject) => {
        this.abortWait = reject;
      }),
    ]).finally(() => {
      this.abortWait = undefined;
    });
    if (this.plan !== candidate) return; // superseded while loading
    this.readyEpoch = candidate.epoch;
    let keepPositions = false;
    const holding = candidate.handover !== undefined && previous !== undefined;
    const heldFromMs = performance.now();
    let pipeline: RemotePipeline;
    try {
      if (holding) {
        const outcome = await commitHandover(previous, candidate, await this.scheduler.quiesce(), (w) => this.membership.members().get(w)?.address);
        keepPositions = outcome.migrated;
        this.log(`hand-over to plan ${candidate.epoch}: ${outcome.migrated ? '' : 'replaying instead: '}${outcome.detail}`);
      }
      const addresses = candidate.stages.map((s) => this.addressOf(s.workers[0], members));
      pipeline = await RemotePipeline.open({
        epoch: candidate.epoch,
        stageAddresses: addresses,
        depth: pipelineDepth(addresses, this.options.microBatches ?? 'auto'),
        hiddenSize: this.ckpt.config.hiddenSize,
        vocabSize: this.ckpt.config.vocabSize,
        stepTimeoutMs: this.options.stepTimeoutMs,
        keepaliveTimeMs: this.options.keepaliveTimeMs,
        keepaliveTimeoutMs: this.options.keepaliveTimeoutMs,
        etcdOutage: () => this.leadership?.etcdOutage() ?? false,
      });
    } catch (err) {
      if (holding) this.scheduler.resume(); // the old pipeline fails on its own and is replaced
      throw err;
    }
    const old = this.pipeline;
    this.pipeline = pipeline;
    old?.close();
    this.scheduler.switchTo(pipeline, keepPositions);
    if (holding) {
      const heldMs = performance.now() - heldFromMs;
      this.metrics.observeHandoverPause(heldMs / 1000);
      this.log(`generation was held ${heldMs.toFixed(0)} ms for the hand-over`);
    }
    const waiters = this.pipelineWaiters;
    this.pipelineWaiters = [];
    for (const w of waiters) w.resolve(pipeline);
    this.log(`plan ${candidate.epoch} is serving`);
  }

  private planAddresses = new Map<string, string>();

  private addressesUnchanged(plan: Plan, members: readonly MemberInfo[]): boolean {
    return workersOf(plan).every((w) => members.find((m) => m.id === w)?.address === this.planAddresses.get(w));
  }

  private addressOf(worker: string, members: readonly MemberInfo[]): string {
    const member = members.find((m) => m.id === worker);
    if (member === undefined) throw new UnavailableError(`worker ${worker} left while plan was loading`);
    return member.address;
  }

  // ---- status and metrics ----

  private eventMetrics(): (event: GenerationEvent) => void {
    return (event) => {
      if (event.type === 'token') this.metrics.countGeneratedTokens(1);
      else {
        this.metrics.observeTimeToFirstToken(event.timeToFirstTokenMs / 1000);
        if (event.generatedTokens > 1) this.metrics.observeInterToken((event.totalMs - event.timeToFirstTokenMs) / 1000 / (event.generatedTokens - 1));
        if (event.resumes > 0) this.metrics.countResumedSequences(1);
      }
    };
  }

  async status(): Promise<ClusterStatus> {
    const plan = this.plan;
    const members = this.membership.members();
    let anyLoading = false;
    const workers = await Promise.all(
      [...members.values()].map(async (m) => {
        const reply = await workerStatus(m.address, STATUS_TIMEOUT_MS);
        if (reply?.loading === true) anyLoading = true;
        const stage = plan?.stages.find((s) => s.workers[0] === m.id);
        const experts = (plan?.experts ?? []).filter((e) => e.workers.includes(m.id));
        const byLayer = new Map<number, number[]>();
        for (const e of experts) byLayer.set(e.layer, [...(byLayer.get(e.layer) ?? []), e.expert]);
        return {
          id: m.id,
          address: m.address,
          layerStart: stage?.range.start ?? 0,
          layerEnd: stage?.range.end ?? 0,
          sequences: reply?.sequences ?? 0,
          kvCacheBytes: reply?.kvCacheBytes ?? 0,
          ready: reply !== undefined && plan !== undefined && reply.planEpoch === plan.epoch && this.readyEpoch === plan.epoch,
          experts: [...byLayer.entries()].map(([layer, list]) => ({ layer, experts: list })),
        };
      }),
    );
    workers.sort((a, b) => a.layerStart - b.layerStart || a.id.localeCompare(b.id));
    return {
      planEpoch: plan?.epoch ?? 0,
      model: this.options.modelId,
      workers,
      activeSequences: this.scheduler.activeSequences,
      waitingRequests: this.scheduler.waitingSequences,
      serving: this.current() !== undefined && this.leadership?.isLeader() === true,
      settled: this.replansPending === 0 && plan !== undefined && this.readyEpoch === plan.epoch && !anyLoading,
    };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.replanTimer);
    clearInterval(this.watchdog);
    this.rebalancer?.stop();
    this.scheduler.abortAll(new UnavailableError('the coordinator is shutting down'));
    this.pipeline?.close();
    await this.server?.close();
    await this.metricsServer?.close();
    await this.membership.close();
    await this.leadership?.stop();
    await this.pool.close();
    this.etcd.close();
  }
}

function samePlacement(a: Plan, b: Plan): boolean {
  return JSON.stringify({ s: a.stages, e: a.experts ?? [] }) === JSON.stringify({ s: b.stages, e: b.experts ?? [] });
}
