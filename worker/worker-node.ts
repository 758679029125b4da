/**
 * A worker process: registers in etcd under a lease, follows the plan, loads the layer range (and
 * experts) the plan gives it on its engine thread, serves the Worker gRPC service, and reports
 * ready for each epoch it has applied. It stops accepting frames as soon as its lease may have
 * expired (self-fencing) and serves again once it has re-registered.
 */
import { nativeKernels, resolveLinearBackend } from '../common/kernels/native-kernels';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { EtcdKeys, createEtcdClient } from '../common/cluster/etcd-keys';
import { decodeMember, type MemberInfo } from '../common/cluster/member';
import { assignmentsOf, type Plan } from '../common/cluster/plan';
import type { ExpertBackend } from '../common/engine/experts';
import type { SessionSettings } from '../common/engine/ort-session';
import { FailedPreconditionError, UnavailableError, asBoraError } from '../common/errors';
import type { LayerRange, WorkerId } from '../common/ids';
import { startMetricsServer, type MetricsServer } from '../common/metrics/metrics-server';
import { toServiceError } from '../common/wire/grpc-status';
import type { CommitReply, SequencePosition } from '../common/wire/messages';
import { WorkerMetrics } from '../common/metrics/worker-metrics';
import { PlanStore, type PlanWatch } from '../common/cluster/plan-store';
import type { RemoteExpertsSpec, WeightSourceSpec } from './engine-protocol';
import { EngineThread, type ThreadedExperts, type ThreadedStage } from './engine-thread';
import { RoutedTokens, type ExpertDispatchStats } from './expert-stats';
import { Registration } from './registration';
import { StageHost, type StageInstall } from './stage-host';
import { migrateStage } from './handover';
import { KvSources, fetchKvHandler } from './kv-transfer';
import { startWorkerServer, type BoundServer } from './worker-server';
import type { HandoverHandlers, WorkerState } from './worker-service';

export interface WorkerNodeOptions {
  readonly id: WorkerId;
  readonly etcdUrl: string;
  readonly listenHost: string;
  readonly listenPort: number;
  /** Host peers dial; defaults to the listen host. */
  readonly advertiseHost?: string;
  /** Directory holding model directories by model id; without it, weights come from the coordinator. */
  readonly modelsDir?: string;
  readonly memoryBytes: number;
  readonly session: SessionSettings;
  readonly leaseTtlMs: number;
  readonly metricsPort?: number;
  readonly keysPrefix?: string;
  /** Keepalive on data streams: a silent peer is declared dead after about time + timeout. */
  readonly keepaliveTimeMs: number;
  readonly keepaliveTimeoutMs: number;
  readonly log?: (message: string) => void;
}

const STATS_INTERVAL_MS = 1000;
/**
 * A hand-over plan not committed within this long is installed anyway, with empty caches (the
 * coordinator then replays). As long as the coordinator's own wait for every worker to load
 * (--ready-timeout-ms, 5 min): the other workers may take that long. A newer plan (another
 * coordinator taking over, a failure) ends the wait at once.
 */
const HANDOVER_COMMIT_TIMEOUT_MS = 300_000;
/** Stages a hand-over retires stay loaded this long, so that other workers can still copy their caches. */
const HANDOVER_SOURCE_GRACE_MS = 20_000;

/** The coordinator's commit of a hand-over plan, and where its answer goes. */
interface Commit {
  readonly sequences: readonly SequencePosition[];
  reply(result: CommitReply): void;
}

function rangeKey(modelId: string, range: LayerRange, expertsSpread: boolean): string {
  return `${modelId}:${range.start}-${range.end}${expertsSpread ? ':spread' : ''}`;
}

interface Loaded {
  readonly modelId: string;
  readonly range: LayerRange;
  readonly stage: ThreadedStage;
  /** Loaded without its experts: they run on the workers the plan's expert placement names. */
  readonly expertsSpread: boolean;
}

export class WorkerNode {
  private readonly log: (message: string) => void;
  private readonly metrics = new WorkerMetrics();
  /** Where new stages load; see threadForLoads. */
  private thread = this.newThread();
  /** Every engine thread that holds something, the current one included. */
  private readonly threads = new Set<EngineThread>([this.thread]);
  private readonly host: StageHost;
  private readonly keys: EtcdKeys;
  private readonly etcd: Etcd3;
  private server: BoundServer | undefined;
  private metricsServer: MetricsServer | undefined;
  private registration: Registration | undefined;
  private planWatch: PlanWatch | undefined;
  /** Every stage engine loaded here, served or standby, by rangeKey. */
  private loadedStages = new Map<string, Loaded>();
  private experts: { key: string; experts: ThreadedExperts } | undefined;
  private applying: Promise<void> = Promise.resolve();
  private latestPlan: Plan | undefined;
  private stopped = false;
  private statsTimer: NodeJS.Timeout | undefined;
  private advertisedLoad = { activeSequences: 0, queueDepth: 0 };
  /** Plans received and not yet applied in full (standbys included): the Status reply's `loading`. */
  private plansApplying = 0;
  /** The stages served per epoch, whose caches a hand-over copies. */
  private readonly kvSources = new KvSources();
  /** A loaded hand-over plan waiting for the coordinator's commit. */
  private pendingCommit: { readonly epoch: number; deliver(commit: Commit | undefined): void } | undefined;
  /** Tokens this worker's stages routed per expert, for the Status reply (expert placement). */
  private readonly routedTokens = new RoutedTokens();

  constructor(private readonly options: WorkerNodeOptions) {
    this.log = options.log ?? ((m) => console.error(`${new Date().toISOString()} [worker ${options.id}] ${m}`));
    this.keys = new EtcdKeys(options.keysPrefix);
    this.etcd = createEtcdClient({ hosts: options.etcdUrl });
    this.host = new StageHost(
      options.id,
      { drainTimeoutMs: 10_000, keepaliveTimeMs: options.keepaliveTimeMs, keepaliveTimeoutMs: options.keepaliveTimeoutMs },
      {
        onForward: (seconds, tokens) => {
          const runner = this.host.runner();
          if (runner === undefined) return;
          this.metrics.observeForward(runner.assignment.stageIndex, seconds, tokens);
          this.metrics.setKvCache(runner.assignment.stageIndex, runner.stage.stats.kvCacheBytes, runner.stage.stats.sequenceCount);
        },
        onQueueDepth: (depth) => this.metrics.setQueueDepth(this.host.runner()?.assignment.stageIndex ?? 0, depth),
        onRejected: (reason) => this.metrics.countRejectedFrame(reason),
        onDownstreamBroken: (err) => this.log(`stream to the next stage broke: ${err.message}`),
        onSendFailed: (err) => this.log(`could not pass a micro-batch on: ${err.message}`),
      },
    );
  }

  get address(): string {
    return this.server!.address;
  }

  get metricsAddress(): string | undefined {
    return this.metricsServer === undefined ? undefined : `${this.options.advertiseHost ?? this.options.listenHost}:${this.metricsServer.port}`;
  }

  async start(): Promise<void> {
    const o = this.options;
    const bound = await startWorkerServer(this.serviceState(), o.listenHost, o.listenPort, { timeMs: o.keepaliveTimeMs, timeoutMs: o.keepaliveTimeoutMs }, this.handoverHandlers());
    this.server = { ...bound, address: `${o.advertiseHost ?? o.listenHost}:${bound.port}` };
    if (o.metricsPort !== undefined) this.metricsServer = await startMetricsServer(this.metrics.registry, o.listenHost, o.metricsPort);

    const member: MemberInfo = {
      id: o.id,
      address: this.address,
      metricsAddress: this.metricsAddress,
      memoryBytes: o.memoryBytes,
      accelerators: ['cpu', ...(nativeKernels() === undefined ? [] : [nativeKernels()!.isa()])],
      weightPrecision: resolveLinearBackend() === 'native' ? 'stored' : 'f32',
      load: { activeSequences: 0, queueDepth: 0 },
      startedAtMs: Date.now(),
    };
    const registration = new Registration({ client: this.etcd, keys: this.keys, member, ttlMs: o.leaseTtlMs, log: this.log });
    this.registration = registration;
    this.host.setServingCheck(() => registration.isServing());
    registration.on('fenced', (reason) => {
      this.metrics.setServing(false);
      this.log(`fenced: ${reason}; refusing frames until the lease is renewed`);
    });
    registration.on('serving', () => this.metrics.setServing(true));
    registration.on('registered', () => {
      // After a lost lease the ready key went with it: report the applied epoch again.
      const epoch = this.host.servingEpoch();
      if (epoch !== undefined) registration.markReady(epoch).catch((err: unknown) => this.log(`re-marking ready: ${asBoraError(err).message}`));
    });
    await registration.start();
    this.metrics.setServing(true);

    this.planWatch = new PlanStore({ client: this.etcd, keys: this.keys, log: this.log }).watchPlan((plan) => this.onPlan(plan));
    await this.planWatch.ready;
    this.statsTimer = setInterval(() => this.publishStats(), STATS_INTERVAL_MS);
    this.statsTimer.unref();
    this.log(`serving on ${this.address}`);
  }

  /** KV-cache gauges and the load this worker advertises in etcd. */
  private publishStats(): void {
    const runner = this.host.runner();
    if (runner === undefined) return;
    const { sequenceCount, kvCacheBytes } = runner.stage.stats;
    this.metrics.setKvCache(runner.assignment.stageIndex, kvCacheBytes, sequenceCount);
    const load = { activeSequences: sequenceCount, queueDepth: runner.queueDepth };
    if (load.activeSequences !== this.advertisedLoad.activeSequences || load.queueDepth !== this.advertisedLoad.queueDepth) {
      this.advertisedLoad = load;
      this.registration?.updateLoad(load).catch(() => undefined); // informational; the next tick retries
    }
  }

  /** Plans are applied one at a time, newest last; an older epoch is never applied. */
  private onPlan(plan: Plan): void {
    if (this.latestPlan !== undefined && plan.epoch <= this.latestPlan.epoch) return;
    this.latestPlan = plan;
    this.pendingCommit?.deliver(undefined); // a newer plan: the hand-over waiting for its commit is off
    this.plansApplying++;
    this.applying = this.applying.then(async () => {
      try {
        if (this.stopped || this.latestPlan !== plan) return; // superseded while waiting
        await this.apply(plan);
      } catch (err) {
        this.log(`could not apply plan ${plan.epoch}: ${asBoraError(err).message}`);
      } finally {
        this.plansApplying--;
      }
    });
  }

  private async apply(plan: Plan): Promise<void> {
    const id = this.options.id;
    const source = await this.sourceFor(plan.modelId);
    const started = performance.now();

    // The experts this worker holds come first: a stage with its experts spread runs the ones
    // held here in its own thread, and needs their handle.
    const holdings = assignmentsOf(plan, id).experts;
    const expertKey = JSON.stringify([plan.modelId, holdings]);
    let experts = this.experts;
    if (holdings.length === 0) experts = undefined;
    else if (experts?.key !== expertKey) experts = { key: expertKey, experts: (await this.thread.loadExperts(source, holdings, this.options.session)).experts };

    // Every range this worker holds is loaded: as primary it serves it, as standby it keeps it
    // warm, so that a failover that promotes it needs no weight load. Primaries first: the
    // worker reports ready as soon as it can serve; standbys load afterwards, in the background.
    let fresh = false;
    const threadForLoads = (): EngineThread => {
      if (!fresh && plan.experts === undefined && this.thread.openHandles > 0) this.useFreshThread();
      fresh = true;
      return this.thread;
    };
    const held = plan.stages.map((s, index) => ({ index, range: s.range, primary: s.workers[0] === id })).filter((h) => plan.stages[h.index].workers.includes(id));
    const stages = new Map<string, Loaded>();
    let loadedAny = false;
    const ensure = async (h: (typeof held)[number]): Promise<Loaded> => {
      const spread = plan.experts === undefined ? undefined : await this.remoteExpertsSpec(plan, h.range, experts?.experts);
      const key = rangeKey(plan.modelId, h.range, spread !== undefined);
      const kept = stages.get(key) ?? this.loadedStages.get(key);
      if (kept !== undefined) {
        // Same layers: only the expert placement and epoch change (the stage lane runs this after
        // any forward still in flight, so no step mixes two placements). The coordinator replays
        // every sequence on a new plan, so caches of the old one are dropped, including those of
        // sequences that ended while their release could not reach this worker.
        if (spread !== undefined) await kept.stage.setExperts(spread);
        if (!stages.has(key) && plan.handover === undefined) await kept.stage.releaseAll();
        stages.set(key, kept);
        return kept;
      }
      const stage = (await threadForLoads().loadStage(source, h.range, this.options.session, spread)).stage;
      loadedAny = true;
      const loaded = { modelId: plan.modelId, range: h.range, stage, expertsSpread: spread !== undefined };
      stages.set(key, loaded);
      this.log(`loaded layers [${h.range.start}, ${h.range.end}) of ${plan.modelId}${spread === undefined ? '' : ' (experts spread)'}${h.primary ? '' : ' as standby'} for epoch ${plan.epoch}`);
      return loaded;
    };

    const installs: StageInstall[] = [];
    for (const h of held.filter((x) => x.primary)) {
      const { stage } = await ensure(h);
      const next = plan.stages[h.index + 1];
      const nextAddress = next === undefined ? undefined : next.workers[0] === id ? this.address : await this.addressOf(next.workers[0]);
      installs.push({ assignment: { epoch: plan.epoch, stageIndex: h.index, stageCount: plan.stages.length, range: h.range }, stage, nextAddress });
    }
    if (loadedAny || experts !== this.experts) this.metrics.observeModelLoad((performance.now() - started) / 1000);
    let commit: Commit | undefined;
    if (plan.handover !== undefined) {
      // Loaded; the previous plan keeps serving until the coordinator commits this one. The commit
      // is awaited before the ready mark goes out: the coordinator sends CommitPlan as soon as it
      // sees every worker ready, and one arriving first would find nothing to commit (seen in a
      // game day: the coordinator fell back to replay and this worker waited for a commit that
      // never came).
      const committed = this.commitOf(plan.epoch);
      try {
        await this.registration!.markReady(plan.epoch);
      } catch (err) {
        this.pendingCommit?.deliver(undefined);
        throw err;
      }
      commit = await committed;
      if (this.latestPlan !== plan) {
        commit?.reply({ migrated: false, detail: `plan ${plan.epoch} was superseded` });
        this.loadedStages = new Map([...this.loadedStages, ...stages]); // the next plan reuses or retires them
        if (experts !== undefined && experts !== this.experts) await experts.experts.close(); // the next plan loads its own
        return;
      }
      const result = commit === undefined ? { migrated: false, detail: `no commit within ${HANDOVER_COMMIT_TIMEOUT_MS} ms` } : await this.migrate(plan, installs, commit.sequences);
      if (!result.migrated) for (const i of installs) await i.stage.retain([]);
      if (commit !== undefined) this.log(`hand-over to plan ${plan.epoch}: ${result.detail}`);
      commit?.reply(result);
    }
    const previousExperts = this.experts;
    this.host.installStages(plan.epoch, installs, experts === undefined ? undefined : this.metered(experts.experts));
    this.kvSources.set(plan.epoch, installs.map((i) => i.stage));
    this.experts = experts;
    if (previousExperts !== undefined && previousExperts !== experts) await previousExperts.experts.close();
    this.metrics.setPlanEpoch(plan.epoch);
    // Keep standby engines already loaded until the standbys of this plan are in place.
    for (const h of held.filter((x) => !x.primary)) {
      const key = rangeKey(plan.modelId, h.range, plan.experts !== undefined);
      const kept = this.loadedStages.get(key);
      if (kept !== undefined) stages.set(key, kept);
    }
    const previousStages = this.loadedStages;
    this.loadedStages = new Map([...previousStages, ...stages]);
    await this.registration!.markReady(plan.epoch);

    for (const h of held.filter((x) => !x.primary)) {
      if (this.latestPlan !== plan) break; // a newer plan decides what to keep warm
      await ensure(h);
    }
    if (this.latestPlan !== plan) return;
    const retired = [...this.loadedStages].filter(([key]) => !stages.has(key));
    this.loadedStages = stages;
    const close = async (): Promise<void> => {
      for (const [key, old] of retired) if (this.loadedStages.get(key) !== old) await old.stage.close();
      await this.reapThreads();
    };
    // After a hand-over other workers may still be copying caches from the retired stages.
    if (plan.handover === undefined) await close();
    else setTimeout(() => void close(), HANDOVER_SOURCE_GRACE_MS).unref();
  }

  private newThread(): EngineThread {
    return new EngineThread({ onExpertStats: (stats) => this.recordExpertStats(stats) });
  }

  /**
   * New stages load on a fresh engine thread when the current one already holds stages: creating
   * an onnxruntime session blocks its thread (about a second per 1B-model layer here), and the
   * stages serving meanwhile must not wait behind it. Not with experts spread, whose stages run
   * the worker's own experts in their thread.
   */
  private useFreshThread(): void {
    this.thread = this.newThread();
    this.threads.add(this.thread);
  }

  /** Ends the engine threads whose stages have all been closed. */
  private async reapThreads(): Promise<void> {
    for (const thread of [...this.threads]) {
      if (thread === this.thread || thread.openHandles > 0) continue;
      this.threads.delete(thread);
      await thread.terminate();
    }
  }

  /** Waits for the coordinator's CommitPlan of `epoch`; undefined on timeout or a newer plan. */
  private commitOf(epoch: number): Promise<Commit | undefined> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => deliver(undefined), HANDOVER_COMMIT_TIMEOUT_MS);
      const deliver = (commit: Commit | undefined): void => {
        clearTimeout(timer);
        if (this.pendingCommit === pending) this.pendingCommit = undefined;
        resolve(commit);
      };
      const pending = { epoch, deliver };
      this.pendingCommit = pending;
    });
  }

  /** Puts the committed sequences' caches in place on every stage this worker will serve. */
  private async migrate(plan: Plan, installs: readonly StageInstall[], sequences: readonly SequencePosition[]): Promise<CommitReply> {
    const handover = plan.handover!;
    try {
      for (const install of installs) {
        await migrateStage(
          {
            self: this.options.id,
            handover,
            sources: this.kvSources,
            addressOf: (w) => this.addressOf(w),
            shape: { kvHeads: install.stage.config.numKvHeads, headDim: install.stage.config.headDim },
          },
          install.stage,
          sequences,
        );
      }
      return { migrated: true, detail: `the caches of ${sequences.length} sequence(s) are in place on ${installs.length} stage(s)` };
    } catch (err) {
      return { migrated: false, detail: `caches dropped (the coordinator replays): ${asBoraError(err).message}` };
    }
  }

  /** CommitPlan and FetchKv (the worker side of a planned hand-over). */
  private handoverHandlers(): HandoverHandlers {
    return {
      CommitPlan: (call, callback) => {
        const pending = this.pendingCommit;
        if (pending === undefined || pending.epoch !== call.request.planEpoch) {
          callback(toServiceError(new FailedPreconditionError(`worker ${this.options.id} has no loaded hand-over plan ${call.request.planEpoch} to commit`)));
          return;
        }
        pending.deliver({ sequences: call.request.sequences, reply: (result) => callback(null, result) });
      },
      FetchKv: fetchKvHandler(this.kvSources),
    };
  }

  /**
   * The expert placement of the stage's layers with each holder's address. A holder with no
   * member record (gone since the plan was made) is left out: its experts' other copies serve.
   */
  private async remoteExpertsSpec(plan: Plan, range: LayerRange, own: ThreadedExperts | undefined): Promise<RemoteExpertsSpec> {
    const placements = (plan.experts ?? []).filter((p) => p.layer >= range.start && p.layer < range.end);
    const ids = [...new Set(placements.flatMap((p) => p.workers))];
    const addresses = new Map<WorkerId, string>();
    for (const [i, address] of (await Promise.all(ids.map((w) => this.addressOf(w).catch(() => undefined)))).entries()) {
      if (address === undefined) this.log(`expert holder ${ids[i]} of plan ${plan.epoch} is not registered; its replicas serve its experts`);
      else addresses.set(ids[i], address);
    }
    const table = placements.map((p) => ({ layer: p.layer, expert: p.expert, addresses: p.workers.flatMap((w) => addresses.get(w) ?? []) }));
    return { epoch: plan.epoch, table, ...(own === undefined ? {} : { self: { address: this.address, experts: own.handle } }) };
  }

  /** The experts served to other stages over RunExperts, timed for bora_expert_run_seconds. */
  private metered(experts: ThreadedExperts): ExpertBackend {
    return {
      run: async (layer, calls) => {
        const started = performance.now();
        try {
          return await experts.run(layer, calls);
        } finally {
          this.metrics.observeExpertRun((performance.now() - started) / 1000);
        }
      },
    };
  }

  /** What the Worker service serves from: the stage host, plus the routed token counts. */
  private serviceState(): WorkerState {
    const host = this.host;
    return {
      workerId: host.workerId,
      results: host.results,
      servingEpoch: () => host.servingEpoch(),
      isServing: () => host.isServing(),
      runnerFor: (stageIndex) => host.runnerFor(stageIndex),
      runners: () => host.runners(),
      experts: () => host.experts(),
      onRejected: (reason) => host.onRejected(reason),
      expertTokens: () => this.routedTokens.list(),
      loading: () => this.plansApplying > 0,
    };
  }

  private recordExpertStats(stats: ExpertDispatchStats): void {
    this.routedTokens.add(stats.tokens);
    for (const t of stats.tokens) this.metrics.countExpertTokens(t.layer, t.expert, t.tokens);
    for (const seconds of stats.dispatchSeconds) this.metrics.observeExpertDispatch(seconds);
    for (const [role, calls] of Object.entries(stats.served) as [keyof typeof stats.served, number][]) if (calls > 0) this.metrics.countExpertCall(role, calls);
    if (stats.holderFailures > 0) {
      this.metrics.countExpertHolderFailures(stats.holderFailures);
      this.log(`${stats.holderFailures} expert call(s) moved to a replica; latest: ${stats.lastFailure ?? 'unknown'}`);
    }
  }

  private async sourceFor(modelId: string): Promise<WeightSourceSpec> {
    const dir = this.options.modelsDir === undefined ? undefined : join(this.options.modelsDir, modelId);
    if (dir !== undefined && existsSync(join(dir, 'config.json'))) return { kind: 'local', dir };
    const coordinator = await this.etcd.get(`${this.keys.prefix}/coordinator`).string();
    if (coordinator === null) throw new UnavailableError(`model ${modelId} is not in ${this.options.modelsDir ?? '(no --models-dir)'} and no coordinator is registered to fetch it from`);
    return { kind: 'remote', address: coordinator, modelId };
  }

  private async addressOf(worker: WorkerId): Promise<string> {
    const text = await this.etcd.get(this.keys.member(worker)).string();
    if (text === null) throw new UnavailableError(`worker ${worker} of the plan is not registered`);
    return decodeMember(text).address;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.statsTimer);
    await this.planWatch?.close();
    this.host.uninstall();
    await this.registration?.close().catch(() => undefined);
    await this.server?.close();
    await this.metricsServer?.close();
    for (const thread of this.threads) await thread.terminate();
    this.etcd.close();
  }
}
