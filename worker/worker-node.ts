/**
 * A worker process: registers in etcd under a lease, follows the plan, loads the layer range (and
 * experts) the plan gives it on its engine thread, serves the Worker gRPC service, and reports
 * ready for each epoch it has applied. It stops accepting frames as soon as its lease may have
 * expired (self-fencing) and serves again once it has re-registered.
 */
import { nativeKernels, resolveLinearBackend } from '../common/kernels/native-kernels';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { isGgufPath } from '../common/model/open-model';
import type { Etcd3 } from 'etcd3';
import { EtcdKeys } from '../common/cluster/etcd-keys';
import { decodeMember, type MemberInfo } from '../common/cluster/member';
import type { Plan } from '../common/cluster/plan';
import type { ComputeSettings } from '../common/engine/compute-settings';
import { InvalidArgumentError, UnavailableError, asBoraError } from '../common/errors';
import type { AuditLog } from '../common/security/audit';
import { formatIdentity, sameIdentity } from '../common/security/identity';
import { nodeEtcdClient } from '../common/security/node-etcd';
import { INSECURE, type NodeSecurity, transportSpec } from '../common/security/node-security';
import type { LayerRange, WorkerId } from '../common/ids';
import { startMetricsServer, type MetricsServer } from '../common/metrics/metrics-server';
import type { CommitReply, SequencePosition } from '../common/wire/messages';
import { WorkerMetrics } from './worker-metrics';
import { PlanStore, type PlanWatch } from '../common/cluster/plan-store';
import type { WeightSourceSpec } from './engine-protocol';
import type { EngineThread, ThreadedExperts, ThreadedStage } from './engine-thread';
import { EngineThreads } from './engine-threads';
import { CommitGate, type Commit } from './commit-gate';
import { RoutedTokens } from './expert-stats';
import { meteredExperts, recordExpertStats, remoteExpertsSpec } from './expert-holdings';
import { reconcile, type StageNeed } from './reconcile';
import { Registration } from './registration';
import { StageHost, type StageInstall } from './stage-host';
import { migrateStage } from './handover';
import { KvSources, fetchKvHandler } from './kv-transfer';
import { startWorkerServer, type BoundServer } from './worker-server';
import { drainSelf, type SelfDrainResult } from './self-drain';
import { ReadinessProbe, type ReadyState } from '../common/metrics/readiness';
import { HealthService } from '../common/wire/health-service';

/** The Worker service's name in grpc.health.v1. */
const WORKER_SERVICE = 'bora.v1.Worker';
import type { HandoverHandlers, WorkerState } from './worker-service';
import { WorkerAccess } from './worker-access';
import { PlanPeers } from './plan-peers';
import { DEFAULT_SEQUENCE_IDLE_MS } from './idle-sequences';
import { defaultLogger, type RootLogger } from '../common/logging/logger';
import { LoadProgressReporter } from './load-progress';
import { ModelRegistry } from '../common/models/model-registry';
import { VersionCheck } from './version-check';

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
  readonly compute: ComputeSettings;
  readonly leaseTtlMs: number;
  readonly metricsPort?: number;
  readonly keysPrefix?: string;
  /** Keepalive on data streams: a silent peer is declared dead after about time + timeout. */
  readonly keepaliveTimeMs: number;
  readonly keepaliveTimeoutMs: number;
  /** Where this node's log lines go; default: JSON lines on stderr (common/logging/logger.ts). */
  readonly log?: RootLogger;
  /** Mutual TLS on every link, and the Worker service's checks (worker-access.ts); plaintext
   * and unchecked when absent. With TLS the certificate must be worker/<id>. */
  readonly security?: NodeSecurity;
  /** Where refused calls are recorded; none when absent. */
  readonly audit?: AuditLog;
  /** A sequence no frame reached for this long has its caches freed; default DEFAULT_SEQUENCE_IDLE_MS. */
  readonly sequenceIdleMs?: number;
  /**
   * Budget of each stage's prefix cache (worker/prefix-stage.ts); 0 or absent: no prefix cache.
   * The first stage's budget decides; later stages hold the blocks it holds.
   */
  readonly prefixCacheBytes?: number;
}

const STATS_INTERVAL_MS = 1000;

/**
 * The memory a worker offers placement: its budget less what its prefix cache may hold, so that
 * weights, KV and the prefix cache together stay within `--memory-bytes`.
 */
export function placeableMemoryBytes(memoryBytes: number, prefixCacheBytes: number): number {
  if (prefixCacheBytes >= memoryBytes) {
    throw new InvalidArgumentError(`--prefix-cache-bytes (${prefixCacheBytes}) must be less than --memory-bytes (${memoryBytes}): the cache is carved out of the worker's memory budget`);
  }
  return memoryBytes - prefixCacheBytes;
}
/**
 * A hand-over plan not committed within this long is installed anyway, with empty caches (the
 * coordinator then replays). As long as the coordinator's own wait for every worker to load
 * (--ready-timeout-ms, 5 min): the other workers may take that long. A newer plan (another
 * coordinator taking over, a failure) ends the wait at once.
 */
const HANDOVER_COMMIT_TIMEOUT_MS = 300_000;
/** Stages a hand-over retires stay loaded this long, so that other workers can still copy their caches. */
const HANDOVER_SOURCE_GRACE_MS = 20_000;

interface Loaded {
  readonly modelId: string;
  readonly range: LayerRange;
  readonly stage: ThreadedStage;
  /** Loaded without its experts: they run on the workers the plan's expert placement names. */
  readonly expertsSpread: boolean;
}

export class WorkerNode {
  private readonly log: RootLogger;
  private readonly metrics = new WorkerMetrics();
  /** /readyz and grpc.health.v1: ready while it holds its lease and serves the latest plan. */
  private readonly readiness = new ReadinessProbe(() => this.readyState());
  private readonly health = new HealthService([WORKER_SERVICE]);
  private readonly threads: EngineThreads;
  private readonly security: NodeSecurity;
  private readonly host: StageHost;
  private readonly keys: EtcdKeys;
  private readonly etcd: Etcd3;
  private server: BoundServer | undefined;
  private metricsServer: MetricsServer | undefined;
  private registration: Registration | undefined;
  private planWatch: PlanWatch | undefined;
  /** Every stage engine loaded here, served or standby, by stageKey. */
  private loadedStages = new Map<string, Loaded>();
  private experts: { key: string; experts: ThreadedExperts } | undefined;
  private applying: Promise<void> = Promise.resolve();
  private latestPlan: Plan | undefined;
  /** The plan whose epoch the Worker service serves now. */
  private servedPlan: Plan | undefined;
  private readonly planPeers = new PlanPeers();
  private stopped = false;
  private statsTimer: NodeJS.Timeout | undefined;
  private advertisedLoad = { activeSequences: 0, queueDepth: 0 };
  /** Plans received and not yet applied in full (standbys included): the Status reply's `loading`. */
  private plansApplying = 0;
  /** The stages served per epoch, whose caches a hand-over copies. */
  private readonly kvSources = new KvSources();
  /** Where a loaded hand-over plan waits for the coordinator's commit. */
  private readonly commits: CommitGate;
  /** Tokens this worker's stages routed per expert, for the Status reply (expert placement). */
  private readonly routedTokens = new RoutedTokens();
  /** Checks the weights of a plan's registered version (version-check.ts). */
  private readonly versions: VersionCheck;

  constructor(private readonly options: WorkerNodeOptions) {
    this.log = options.log ?? defaultLogger(options.id, 'worker');
    this.keys = new EtcdKeys(options.keysPrefix);
    this.metrics.setMemoryBudget(options.memoryBytes);
    this.security = options.security ?? INSECURE;
    if (this.security.kind === 'tls' && !sameIdentity(this.security.self, { role: 'worker', id: options.id })) {
      throw new InvalidArgumentError(`worker ${options.id} was given the certificate of ${formatIdentity(this.security.self)} (want worker/${options.id})`);
    }
    this.etcd = nodeEtcdClient({ hosts: options.etcdUrl }, this.security);
    this.versions = new VersionCheck(new ModelRegistry(this.etcd, this.keys), options.id, this.log);
    const loadProgress = new LoadProgressReporter(this.metrics, this.log);
    this.threads = new EngineThreads(
      { onExpertStats: (stats) => recordExpertStats(stats, this.routedTokens, this.metrics, this.log), onLoadProgress: (progress) => loadProgress.report(progress) },
      transportSpec(this.security),
    );
    this.commits = new CommitGate(options.id, HANDOVER_COMMIT_TIMEOUT_MS);
    this.host = new StageHost(
      options.id,
      {
        drainTimeoutMs: 10_000,
        keepaliveTimeMs: options.keepaliveTimeMs,
        keepaliveTimeoutMs: options.keepaliveTimeoutMs,
        security: this.security,
        sequenceIdleMs: options.sequenceIdleMs ?? DEFAULT_SEQUENCE_IDLE_MS,
      },
      {
        onForward: (seconds, tokens) => {
          const runner = this.host.runner();
          if (runner === undefined) return;
          this.metrics.observeForward(runner.assignment.stageIndex, seconds, tokens);
          this.metrics.setKvCache(runner.assignment.stageIndex, runner.stage.stats.kvCacheBytes, runner.stage.stats.sequenceCount);
          const prefix = runner.stage.stats.prefix;
          if (prefix !== undefined) this.metrics.setPrefixCache(runner.assignment.stageIndex, prefix);
        },
        onQueueDepth: (depth) => this.metrics.setQueueDepth(this.host.runner()?.assignment.stageIndex ?? 0, depth),
        onRejected: (reason) => this.metrics.countRejectedFrame(reason),
        onDownstreamBroken: (err) => this.log.warn(`stream to the next stage broke: ${err.message}`),
        onStreamCutOff: (stream, err) => {
          this.metrics.countStreamCutOff(stream);
          this.log.warn(`cut off a ${stream} stream: ${err.message}`);
        },
        onSendFailed: (err) => this.log.warn(`could not pass a micro-batch on: ${err.message}`),
        // The one line per stage that ties a sequence to its request (later lines name the sequence).
        onSequenceOpened: (slice, stage) =>
          this.log.info('sequence opened', { requestId: slice.requestId, sequenceId: slice.id, stage: stage.stageIndex, startPosition: slice.startPosition, tokenCount: slice.tokenCount }),
        onIdleReleased: (count) => {
          this.metrics.countIdleReleases(count);
          this.log.info(`freed the caches of ${count} sequence(s) no frame reached for ${options.sequenceIdleMs ?? DEFAULT_SEQUENCE_IDLE_MS} ms`);
        },
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
    const access = new WorkerAccess(this.security, { planWorkers: () => this.planPeers.of(this.servedPlan, this.latestPlan), audit: o.audit });
    const bound = await startWorkerServer(this.serviceState(), o.listenHost, o.listenPort, { timeMs: o.keepaliveTimeMs, timeoutMs: o.keepaliveTimeoutMs }, this.handoverHandlers(), access, this.health);
    this.server = { ...bound, address: `${o.advertiseHost ?? o.listenHost}:${bound.port}` };
    if (o.metricsPort !== undefined) this.metricsServer = await startMetricsServer(this.metrics.registry, o.listenHost, o.metricsPort, { readiness: this.readiness });

    const member: MemberInfo = {
      id: o.id,
      address: this.address,
      metricsAddress: this.metricsAddress,
      memoryBytes: placeableMemoryBytes(o.memoryBytes, o.prefixCacheBytes ?? 0),
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
      this.log.warn(`fenced: ${reason}; refusing frames until the lease is renewed`);
    });
    registration.on('serving', () => this.metrics.setServing(true));
    registration.on('registered', () => {
      // After a lost lease the ready key went with it: report the applied epoch again.
      const epoch = this.host.servingEpoch();
      if (epoch !== undefined) registration.markReady(epoch).catch((err: unknown) => this.log.warn(`re-marking ready: ${asBoraError(err).message}`));
    });
    await registration.start();
    this.metrics.setServing(true);

    this.planWatch = new PlanStore({ client: this.etcd, keys: this.keys, log: this.log }).watchPlan((plan) => this.onPlan(plan));
    await this.planWatch.ready;
    this.statsTimer = setInterval(() => this.publishStats(), STATS_INTERVAL_MS);
    this.statsTimer.unref();
    this.readiness.onChange((state) => {
      this.health.setAll(state.ready ? 'SERVING' : 'NOT_SERVING');
      this.log.info(`${state.ready ? 'ready' : 'not ready'}: ${state.detail}`);
    });
    this.readiness.start();
    this.log.info(`serving on ${this.address}`);
  }

  private readyState(): ReadyState {
    if (this.stopped) return { ready: false, detail: 'stopping' };
    if (this.registration?.isServing() !== true) return { ready: false, detail: 'no etcd lease (registering, or fenced until it is renewed)' };
    const latest = this.latestPlan;
    if (latest === undefined) return { ready: false, detail: 'no plan published yet' };
    if (this.servedPlan?.epoch !== latest.epoch) return { ready: false, detail: `applying plan ${latest.epoch} (serving ${this.servedPlan?.epoch ?? 'none'})` };
    return { ready: true, detail: `serving plan ${latest.epoch}` };
  }

  /** KV-cache gauges and the load this worker advertises in etcd. */
  private publishStats(): void {
    const runner = this.host.runner();
    if (runner === undefined) return;
    const { sequenceCount, kvCacheBytes, prefix } = runner.stage.stats;
    this.metrics.setKvCache(runner.assignment.stageIndex, kvCacheBytes, sequenceCount);
    if (prefix !== undefined) this.metrics.setPrefixCache(runner.assignment.stageIndex, prefix);
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
    this.commits.cancel(); // a newer plan: the hand-over waiting for its commit is off
    this.plansApplying++;
    this.applying = this.applying.then(async () => {
      try {
        if (this.stopped || this.latestPlan !== plan) return; // superseded while waiting
        await this.apply(plan);
      } catch (err) {
        await this.versions.onLoadFailed(plan, err);
        this.log.error(`could not apply plan ${plan.epoch}: ${asBoraError(err).message}`);
      } finally {
        this.plansApplying--;
      }
    });
  }

  private async apply(plan: Plan): Promise<void> {
    const id = this.options.id;
    const source = await this.versions.check(plan, await this.sourceFor(plan.modelId));
    const started = performance.now();
    const todo = reconcile(plan, { stages: new Set(this.loadedStages.keys()), expertsKey: this.experts?.key }, id);

    // The experts this worker holds come first: a stage with its experts spread runs the ones
    // held here in its own thread, and needs their handle.
    let experts = this.experts;
    if (todo.experts === undefined) experts = undefined;
    else if (todo.expertsChange) experts = { key: todo.experts.key, experts: (await this.threads.current.loadExperts(source, todo.experts.holdings, this.options.compute)).experts };

    // Every range this worker holds is loaded: as primary it serves it, as standby it keeps it
    // warm, so that a failover that promotes it needs no weight load. Primaries first: the
    // worker reports ready as soon as it can serve; standbys load afterwards, in the background.
    // With experts spread, a stage runs the worker's own experts in its thread: no fresh thread.
    let thread: EngineThread | undefined;
    const threadForLoads = (): EngineThread => (thread ??= plan.experts === undefined ? this.threads.fresh() : this.threads.current);
    const stages = new Map<string, Loaded>();
    let loadedAny = false;
    const ensure = async (need: StageNeed): Promise<Loaded> => {
      const spread = plan.experts === undefined ? undefined : await remoteExpertsSpec(plan, need.range, { self: this.address, own: experts?.experts, addressOf: (w) => this.addressOf(w), log: this.log });
      if (need.loaded) {
        // Same layers: only the expert placement and epoch change (the stage lane runs this after
        // any forward still in flight, so no step mixes two placements). The coordinator replays
        // every sequence on a new plan, so caches of the old one are dropped, including those of
        // sequences that ended while their release could not reach this worker.
        // (A standby kept below is already in `stages` and keeps its caches.)
        const kept = stages.get(need.key) ?? this.loadedStages.get(need.key)!;
        if (spread !== undefined) await kept.stage.setExperts(spread);
        if (!stages.has(need.key) && plan.handover === undefined) await kept.stage.releaseAll();
        stages.set(need.key, kept);
        return kept;
      }
      const stage = (await threadForLoads().loadStage(source, need.range, this.options.compute, spread, this.options.prefixCacheBytes ?? 0)).stage;
      loadedAny = true;
      const loaded = { modelId: plan.modelId, range: need.range, stage, expertsSpread: spread !== undefined };
      stages.set(need.key, loaded);
      this.log.info(`loaded layers [${need.range.start}, ${need.range.end}) of ${plan.modelId}${spread === undefined ? '' : ' (experts spread)'}${need.primary ? '' : ' as standby'} for epoch ${plan.epoch}`);
      return loaded;
    };

    const installs: StageInstall[] = [];
    for (const need of todo.primaries) {
      const { stage } = await ensure(need);
      const next = plan.stages[need.index + 1];
      const nextAddress = next === undefined ? undefined : next.workers[0] === id ? this.address : await this.addressOf(next.workers[0]);
      installs.push({ assignment: { epoch: plan.epoch, stageIndex: need.index, stageCount: plan.stages.length, range: need.range }, stage, nextAddress });
    }
    if (loadedAny || experts !== this.experts) this.metrics.observeModelLoad((performance.now() - started) / 1000);
    let commit: Commit | undefined;
    if (plan.handover !== undefined) {
      // Loaded; the previous plan keeps serving until the coordinator commits this one. The commit
      // is awaited before the ready mark goes out: the coordinator sends CommitPlan as soon as it
      // sees every worker ready, and one arriving first would find nothing to commit (seen in a
      // game day: the coordinator fell back to replay and this worker waited for a commit that
      // never came).
      const committed = this.commits.wait(plan.epoch);
      try {
        await this.registration!.markReady(plan.epoch);
      } catch (err) {
        this.commits.cancel();
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
      if (commit !== undefined) this.log.info(`hand-over to plan ${plan.epoch}: ${result.detail}`);
      commit?.reply(result);
    }
    const previousExperts = this.experts;
    this.host.installStages(plan.epoch, installs, experts === undefined ? undefined : meteredExperts(experts.experts, this.metrics));
    this.servedPlan = plan;
    this.kvSources.set(plan.epoch, installs.map((i) => i.stage));
    this.experts = experts;
    if (previousExperts !== undefined && previousExperts !== experts) await previousExperts.experts.close();
    this.metrics.setPlanEpoch(plan.epoch);
    this.log.setEpoch(plan.epoch);
    // Keep standby engines already loaded until the standbys of this plan are in place.
    for (const need of todo.standbys.filter((n) => n.loaded)) stages.set(need.key, this.loadedStages.get(need.key)!);
    const previousStages = this.loadedStages;
    this.loadedStages = new Map([...previousStages, ...stages]);
    await this.registration!.markReady(plan.epoch);

    for (const need of todo.standbys) {
      if (this.latestPlan !== plan) break; // a newer plan decides what to keep warm
      await ensure(need);
    }
    if (this.latestPlan !== plan) return;
    const retired = todo.retire.map((key) => [key, this.loadedStages.get(key)!] as const);
    this.loadedStages = stages;
    const close = async (): Promise<void> => {
      for (const [key, old] of retired) if (this.loadedStages.get(key) !== old) await old.stage.close();
      await this.threads.reap();
    };
    // After a hand-over other workers may still be copying caches from the retired stages.
    if (plan.handover === undefined) await close();
    else setTimeout(() => void close(), HANDOVER_SOURCE_GRACE_MS).unref();
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
            security: this.security,
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
      CommitPlan: (call, callback) => this.commits.commitPlan(call, callback),
      FetchKv: fetchKvHandler(this.kvSources),
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
      onStreamCutOff: (stream, err) => host.onStreamCutOff(stream, err),
      expertTokens: () => this.routedTokens.list(),
      loading: () => this.plansApplying > 0,
    };
  }


  private async sourceFor(modelId: string): Promise<WeightSourceSpec> {
    const dir = this.options.modelsDir === undefined ? undefined : join(this.options.modelsDir, modelId);
    // A model id names a checkpoint directory or a GGUF file (e.g. mistral-q4_k_m.gguf) there.
    if (dir !== undefined && (isGgufPath(dir) ? existsSync(dir) : existsSync(join(dir, 'config.json')))) return { kind: 'local', dir };
    const coordinator = await this.etcd.get(`${this.keys.prefix}/coordinator`).string();
    if (coordinator === null) throw new UnavailableError(`model ${modelId} is not in ${this.options.modelsDir ?? '(no --models-dir)'} and no coordinator is registered to fetch it from`);
    return { kind: 'remote', address: coordinator, modelId };
  }

  private async addressOf(worker: WorkerId): Promise<string> {
    const text = await this.etcd.get(this.keys.member(worker)).string();
    if (text === null) throw new UnavailableError(`worker ${worker} of the plan is not registered`);
    return decodeMember(text).address;
  }

  /**
   * A graceful stop (SIGTERM): asks the coordinator to drain this worker (its layers and caches
   * move to the others by hand-over, nothing is replayed), then stops. Resolves with what the
   * drain achieved; it stops either way.
   */
  async drainAndStop(timeoutMs: number): Promise<SelfDrainResult> {
    const result = this.stopped
      ? { drained: false as const, reason: 'already stopping' }
      : await drainSelf({ id: this.options.id, etcd: this.etcd, keys: this.keys, security: this.security, timeoutMs, log: this.log });
    this.log.info(result.drained ? `drained: plan ${result.planEpoch} serves without this worker; stopping` : `not drained (${result.reason}); stopping`);
    await this.stop();
    return result;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.statsTimer);
    this.readiness.stop();
    this.health.setAll('NOT_SERVING');
    this.health.close();
    await this.planWatch?.close();
    this.host.uninstall();
    await this.registration?.close().catch(() => undefined);
    await this.server?.close();
    await this.metricsServer?.close();
    await this.threads.terminateAll();
    this.etcd.close();
  }
}
