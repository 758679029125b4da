/**
 * The coordinator process: follows membership in etcd, campaigns for leadership, and serves the
 * client API (and the weight service) on top of a continuous-batching scheduler. The parts:
 *
 * - Leadership (leadership.ts): who plans; a standby answers UNAVAILABLE and waits.
 * - PlanLifecycle (plan-lifecycle.ts): publishes each plan, waits for its workers and opens its
 *   data path; it is the scheduler's source of pipelines.
 * - StallWatchdog (stall-watchdog.ts): finds stages that stopped answering mid-pipeline.
 * - ExpertRebalancer (expert-rebalancer.ts): experts spread, re-plans by routing load.
 * - clusterStatus (cluster-status.ts): the Status RPC.
 */
import * as grpc from '@grpc/grpc-js';
import type { Etcd3 } from 'etcd3';
import { EtcdKeys } from '../common/cluster/etcd-keys';
import type { MemberInfo } from '../common/cluster/member';
import { workersOf } from '../common/cluster/plan';
import { InvalidArgumentError, NotFoundError, UnavailableError, asBoraError } from '../common/errors';
import type { AuditLog } from '../common/security/audit';
import { formatIdentity } from '../common/security/identity';
import { NodeAccess } from '../common/security/node-access';
import { nodeEtcdClient } from '../common/security/node-etcd';
import { INSECURE, type NodeSecurity, coordinatorPortCredentials } from '../common/security/node-security';
import { Generator } from '../common/generation/generator';
import { clientRequestLimitBytes, DEFAULT_MAX_PROMPT_BYTES } from '../common/generation/prompt-limits';
import { Scheduler } from '../common/generation/scheduler';
import type { WorkerId } from '../common/ids';
import { startMetricsServer, type MetricsServer } from '../common/metrics/metrics-server';
import { loadModelChatTemplate, loadModelTokenizer, openModel, storedTensorBytes, type ModelCheckpoint } from '../common/model/open-model';
import { ReadinessProbe, type ReadyState } from '../common/metrics/readiness';
import { HealthService } from '../common/wire/health-service';
import { PlanStore } from '../common/cluster/plan-store';
import { type Tokenizer } from '../common/tokenizer/tokenizer';
import { bindServer, type BoundServer } from '../common/wire/bind-server';
import type { ClusterStatus } from '../common/wire/messages';
import { boraProto, channelOptions } from '../common/wire/proto';
import { clusterStatus, STATUS_TIMEOUT_MS } from './cluster-status';
import { CoordinatorMetrics } from './coordinator-metrics';
import { CpuPool } from './cpu-pool';
import { DEFAULT_EXPERT_REBALANCE_MS, ExpertRebalancer } from './expert-rebalancer';
import { footprintFromSizes, keepsStoredWeights, modelFootprint } from './footprint';
import { DEFAULT_COORDINATOR_DRAIN_TIMEOUT_MS, STREAM_FLUSH_MS, waitForRequests } from './graceful-stop';
import { Embedder } from './embeddings';
import { addInferenceService } from './inference-service';
import { SafetyFilter } from './safety/safety-filter';
import type { SafetyOptions } from './safety/safety-options';
import { ModerationClient } from './safety/moderation-client';
import { Leadership } from './leadership';
import { MembershipWatch } from './membership-watch';
import { PlanLifecycle } from './plan-lifecycle';
import type { MicroBatches } from './pipeline-depth';
import type { ExpertsMode, ModelFootprint } from './placement';
import { StallWatchdog } from './stall-watchdog';
import { Admission, type AdmissionOptions } from './admission';
import { ClientGate } from './client-gate';
import type { ApiKeyStore } from '../common/security/api-keys';
import { weightServiceHandlers } from './weight-service';
import { workerStatus } from './worker-probe';
import { templateChatFormatter } from './http/chat-prompt';
import { HttpApi } from './http/http-api';
import { defaultLogger, type RootLogger } from '../common/logging/logger';
import { formatModelRef, type ModelRef } from '../common/models/model-ref';
import { ModelRegistry } from '../common/models/model-registry';

/** The services the coordinator's port serves, by their grpc.health.v1 names. */
const COORDINATOR_SERVICES = ['bora.v1.Inference', 'bora.v1.WeightSource'];

export interface CoordinatorOptions {
  readonly etcdUrl: string;
  readonly listenHost: string;
  readonly listenPort: number;
  readonly advertiseHost?: string;
  readonly modelDir: string;
  readonly modelId: string;
  /**
   * The registered version (common/models/) that `modelDir` holds: plans name it, workers verify
   * their weights against its digests, requests may name it. It must be registered and not failed.
   */
  readonly modelVersion?: ModelRef;
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
  /** Where this node's log lines go; default: JSON lines on stderr (common/logging/logger.ts). */
  readonly log?: RootLogger;
  /** "spread" only: how often the workers' routing counts are collected to place experts by
   * (hot experts get more copies); 0 disables. Default DEFAULT_EXPERT_REBALANCE_MS (expert-rebalancer.ts). */
  readonly expertRebalanceIntervalMs?: number;
  /** Micro-batches in flight per pipeline; 'auto' (default): one per host among the stages. */
  readonly microBatches?: MicroBatches;
  /** UTF-8 bytes of prompt text a request may carry, refused before tokenizing; default DEFAULT_MAX_PROMPT_BYTES. */
  readonly maxPromptBytes?: number;
  /** TLS on its port (client certificate optional) and mutual TLS to workers, with the
   * coordinator's certificate; plaintext when absent. */
  readonly security?: NodeSecurity;
  /** The API keys the client API accepts; undefined: an open API (development only). */
  readonly apiKeys?: ApiKeyStore;
  /** Per-key limits and the admission queue; undefined: none. */
  readonly admission?: AdmissionOptions;
  /** Where refusals, admin calls, node admissions and plan changes are recorded. */
  readonly audit?: AuditLog;
  /** The safety filter's policy and moderation service (coordinator/safety/); none: no filter. */
  readonly safety?: SafetyOptions;
  /** Serve the OpenAI-compatible HTTP API (http/http-api.ts) here; HTTPS when `security` is TLS. */
  readonly httpListen?: { readonly host: string; readonly port: number };
  /** gracefulStop(): how long a leader waits for its running requests; default DEFAULT_COORDINATOR_DRAIN_TIMEOUT_MS. */
  readonly drainTimeoutMs?: number;
}

/**
 * Where this coordinator stands: started (campaigning), leading (it plans and serves), standing
 * by after a lost term, or stopped. Membership is watched from the first term on.
 */
type Role = 'campaigning' | 'leading' | 'standby' | 'stopped';

/** The parts that exist once start() has opened the checkpoint. */
interface Started {
  readonly ckpt: ModelCheckpoint;
  readonly tokenizer: Tokenizer;
  readonly pool: CpuPool;
  readonly tokenizerPool: CpuPool;
  readonly scheduler: Scheduler;
  /** Embeddings through the scheduler (gRPC Embed; the HTTP API's /v1/embeddings). */
  readonly embedder: Embedder;
  readonly lifecycle: PlanLifecycle;
  readonly watchdog: StallWatchdog;
  readonly rebalancer: ExpertRebalancer | undefined;
  readonly leadership: Leadership;
  readonly server: BoundServer;
  readonly metricsServer: MetricsServer | undefined;
  readonly httpApi: HttpApi | undefined;
}

export class CoordinatorNode {
  readonly metrics: CoordinatorMetrics;
  private readonly log: RootLogger;
  private readonly keys: EtcdKeys;
  private readonly etcd: Etcd3;
  private readonly membership: MembershipWatch;
  private readonly plans: PlanStore;
  private role: Role = 'campaigning';
  private membershipWatched = false;
  /** Set by gracefulStop(): new requests are refused while the running ones finish. */
  private stopping = false;
  /** How long stop() lets running gRPC calls end before cutting them; gracefulStop() extends it. */
  private serverCloseGraceMs = 1000;
  private parts: Started | undefined;
  /** Workers being drained: placement leaves them out until they leave the cluster. */
  private readonly draining = new Set<WorkerId>();
  private readonly security: NodeSecurity;
  /**
   * /readyz and grpc.health.v1: ready while leading with a serving plan, or standing by behind a
   * leader that has published one.
   */
  private readonly readiness = new ReadinessProbe(() => this.readyState());
  private readonly health = new HealthService(COORDINATOR_SERVICES);

  constructor(private readonly options: CoordinatorOptions) {
    this.metrics = new CoordinatorMetrics({ model: options.modelId });
    this.log = options.log ?? defaultLogger('coordinator', 'coordinator');
    this.keys = new EtcdKeys(options.keysPrefix);
    this.security = options.security ?? INSECURE;
    if (this.security.kind === 'tls' && this.security.self.role !== 'coordinator') {
      throw new InvalidArgumentError(`the coordinator was given the certificate of ${formatIdentity(this.security.self)} (want a coordinator certificate)`);
    }
    this.etcd = nodeEtcdClient({ hosts: options.etcdUrl }, this.security);
    this.membership = new MembershipWatch({ client: this.etcd, keys: this.keys, log: this.log });
    this.plans = new PlanStore({ client: this.etcd, keys: this.keys, log: this.log });
  }

  get address(): string {
    return this.started.server.address;
  }

  /** host:port of the HTTP API; undefined without --http-listen. */
  get httpAddress(): string | undefined {
    return this.started.httpApi?.address;
  }

  private get started(): Started {
    if (this.parts === undefined) throw new UnavailableError('the coordinator has not started');
    return this.parts;
  }

  async start(): Promise<void> {
    const o = this.options;
    const registry = new ModelRegistry(this.etcd, this.keys);
    if (o.modelVersion !== undefined) await registry.requireServable(o.modelVersion);
    const modelVersion = o.modelVersion === undefined ? undefined : formatModelRef(o.modelVersion);
    const ckpt = await openModel(o.modelDir);
    const tokenizer = await loadModelTokenizer(o.modelDir, ckpt.config);
    // The model's chat template (a directory's files or a GGUF file's tokenizer.chat_template).
    const chatTemplate = await loadModelChatTemplate(o.modelDir);
    const pool = await CpuPool.create({ threads: 1 });
    // Tokenizing gets a thread of its own: a long prompt takes seconds to tokenize, and queued on
    // the sampling thread it would hold back every stream's next token.
    const tokenizerPool = await CpuPool.create({ threads: 1 });
    const maxPromptBytes = o.maxPromptBytes ?? DEFAULT_MAX_PROMPT_BYTES;
    const encode = (text: string, options: { addBos: boolean }): Promise<number[]> => tokenizerPool.encode(o.modelDir, text, ckpt.config, options);
    const footprint = (members: readonly MemberInfo[]): ModelFootprint => modelFootprintOf(ckpt, members);
    let rebalancer: ExpertRebalancer | undefined;
    const lifecycle: PlanLifecycle = new PlanLifecycle({
      modelId: o.modelId,
      modelVersion,
      config: ckpt.config,
      expertsMode: o.expertsMode,
      replicas: o.replicas,
      handover: o.handover !== false,
      replanDebounceMs: o.replanDebounceMs,
      readyTimeoutMs: o.readyTimeoutMs,
      stepTimeoutMs: o.stepTimeoutMs,
      keepaliveTimeMs: o.keepaliveTimeMs,
      keepaliveTimeoutMs: o.keepaliveTimeoutMs,
      microBatches: o.microBatches ?? 'auto',
      plans: this.plans,
      scheduler: (): Scheduler => scheduler,
      metrics: this.metrics,
      isLeader: () => this.role === 'leading',
      etcdOutage: () => this.parts?.leadership.etcdOutage() ?? false,
      members: () => this.membership.members(),
      usable: (m) => this.usable(m),
      footprint,
      expertLoad: () => rebalancer?.load,
      dataPathFailed: () => this.onDataPathFailed(),
      audit: o.audit,
      log: this.log,
      onEpoch: (epoch) => this.log.setEpoch(epoch),
      security: this.security,
    });
    const scheduler: Scheduler = new Scheduler(lifecycle, {
      maxBatchTokens: o.maxBatchTokens,
      maxBatchSequences: o.maxBatchSequences,
      sample: (logits, params, step) => pool.sample(logits, params, step),
      onQueueWait: (seconds) => this.metrics.observeQueueWait(seconds),
      onRecovered: (seconds) => this.metrics.observeRecovery(seconds),
    });
    this.metrics.readQueueFrom(() => ({ active: scheduler.activeSequences, waiting: scheduler.waitingSequences }));
    const generator = new Generator(scheduler, tokenizer, ckpt.config, {
      encode: (text) => encode(text, { addBos: true }),
      maxPromptBytes,
      log: this.log,
    });
    const embedder = new Embedder({ scheduler, config: ckpt.config, encode, maxPromptBytes, onLatency: (seconds) => this.metrics.observeEmbedding(seconds) });
    const watchdog = new StallWatchdog({
      pipeline: () => lifecycle.serving,
      plan: () => lifecycle.plan,
      loadingHandover: () => lifecycle.loadingHandover,
      members: () => this.membership.members(),
      leaseTtlMs: o.leaseTtlMs,
      onSuspectCleared: () => lifecycle.schedule('join'),
      log: this.log,
      security: this.security,
    });

    // One gate for gRPC and HTTP: a key's limits hold across both.
    const gate = new ClientGate({ keys: o.apiKeys, admission: o.admission === undefined ? undefined : new Admission(o.admission), audit: o.audit });
    // One safety filter for every client API (the gRPC service here; the HTTP API uses the same).
    const safety =
      o.safety === undefined
        ? undefined
        : new SafetyFilter({
            policy: o.safety.policy,
            moderation: o.safety.moderation === undefined ? undefined : new ModerationClient(o.safety.moderation),
            metrics: this.metrics,
            audit: o.audit,
          });
    const grpcServer = new grpc.Server(channelOptions(o.keepaliveTimeMs, o.keepaliveTimeoutMs, clientRequestLimitBytes(maxPromptBytes)));
    addInferenceService(grpcServer, {
      generator: () => generator,
      embedder: () => embedder,
      tokenizer,
      encode,
      chatTemplate,
      maxPromptBytes,
      maxPromptTokens: ckpt.config.maxPositionEmbeddings,
      modelId: o.modelId,
      modelVersion: o.modelVersion,
      models: () => registry,
      status: () => this.status(),
      onOutcome: (outcome) => this.metrics.countRequest(outcome),
      onStreamCutOff: (stream, err) => this.log.warn(`cut off a ${stream} stream: ${err.message}`),
      onEvent: (event) => this.metrics.observeGeneration(event),
      onClientRetry: (kind) => this.metrics.countClientRetry(kind),
      checkServing: () => this.checkServing(),
      hasPipeline: () => lifecycle.current() !== undefined,
      drain: (workerId) => this.drain(workerId),
      gate,
      safety,
      log: this.log,
    });
    grpcServer.addService(boraProto().WeightSource.service, weightServiceHandlers(ckpt, o.modelId, new NodeAccess(this.security, { audit: o.audit })));
    this.health.addTo(grpcServer);
    const bound = await bindServer(grpcServer, o.listenHost, o.listenPort, coordinatorPortCredentials(this.security));
    const server = { ...bound, address: `${o.advertiseHost ?? o.listenHost}:${bound.port}` };
    const metricsServer = o.metricsPort === undefined ? undefined : await startMetricsServer(this.metrics.registry, o.listenHost, o.metricsPort, { readiness: this.readiness });
    const httpApi =
      o.httpListen === undefined
        ? undefined
        : await HttpApi.start(
            {
              generator: () => generator,
              checkServing: () => this.checkServing(),
              onEvent: (event) => this.metrics.observeGeneration(event),
              tokenizer,
              encode,
              // The template gRPC Chat renders.
              chatPrompt: templateChatFormatter(chatTemplate, encode),
              config: ckpt.config,
              maxPromptBytes,
              modelId: o.modelId,
              gate,
              hasPipeline: () => lifecycle.current() !== undefined,
              onResponse: (endpoint, status) => this.metrics.countHttpResponse(endpoint, status),
              onOutcome: (outcome) => this.metrics.countRequest(outcome),
              safety,
              embedder: () => embedder,
              log: this.log,
            },
            { ...o.httpListen, ...(this.security.kind === 'tls' ? { tls: this.security.reloader } : {}) },
          );
    const leadership = new Leadership({ client: this.etcd, keys: this.keys, address: server.address, ttlMs: o.leaseTtlMs, log: this.log });
    if (o.expertsMode === 'spread') {
      rebalancer = new ExpertRebalancer({
        intervalMs: o.expertRebalanceIntervalMs ?? DEFAULT_EXPERT_REBALANCE_MS,
        model: footprint,
        placement: { modelId: o.modelId, modelVersion, expertsMode: o.expertsMode, replicas: o.replicas },
        plan: () => (this.role === 'stopped' ? undefined : lifecycle.plan),
        isLeader: () => this.role === 'leading',
        members: () => [...this.membership.members().values()],
        usable: (m) => this.usable(m),
        statusOf: (address) => workerStatus(address, STATUS_TIMEOUT_MS, this.security),
        replan: () => lifecycle.schedule('update'),
        log: this.log,
      });
    }
    this.parts = { ckpt, tokenizer, pool, tokenizerPool, scheduler, embedder, lifecycle, watchdog, rebalancer, leadership, server, metricsServer, httpApi };

    this.membership.onEvent((event) => {
      // Load figures change all the time; only what placement depends on is worth a new plan.
      if (event.type === 'update' && event.member.memoryBytes === event.previous.memoryBytes && event.member.address === event.previous.address) return;
      if (event.type !== 'update') {
        o.audit?.record({ who: `worker ${event.member.id} at ${event.member.address}`, what: event.type === 'join' ? 'node admitted' : 'node left', outcome: 'ok' });
      }
      if (event.type === 'leave') {
        lifecycle.onWorkerLeft(event.member.id);
        this.draining.delete(event.member.id);
        watchdog.forget(event.member.id);
      }
      lifecycle.schedule(event.type);
    });
    leadership.on('elected', () => {
      this.becomeLeader().catch((err: unknown) => this.log.error(`taking over failed: ${asBoraError(err).message}`));
    });
    leadership.on('demoted', (reason) => this.stepDown(reason));
    leadership.start();
    watchdog.start();
    this.readiness.onChange((state) => {
      this.health.setAll(state.ready ? 'SERVING' : 'NOT_SERVING');
      this.log.info(`${state.ready ? 'ready' : 'not ready'}: ${state.detail}`);
    });
    this.readiness.start();
    rebalancer?.start();
    this.log.info(`listening on ${server.address}${httpApi === undefined ? '' : ` (HTTP API on ${httpApi.address})`} for ${o.modelId}; campaigning for leadership`);
  }

  /** Placement may use this member now: it is neither being drained nor suspected of a stall. */
  private usable(member: MemberInfo): boolean {
    return !this.draining.has(member.id) && !this.parts!.watchdog.isSuspect(member.id);
  }

  /**
   * Elected: rebuild the view from etcd and publish the next epoch, so that workers accept only
   * this coordinator's frames from now on (a previous leader's epoch is fenced off).
   */
  private async becomeLeader(): Promise<void> {
    const { lifecycle } = this.started;
    this.role = 'leading';
    const plan = await lifecycle.adopt();
    if (!this.membershipWatched) {
      this.membershipWatched = true;
      await this.membership.start();
    }
    this.metrics.setMembers(this.membership.members().size);
    lifecycle.schedule(plan === undefined ? 'join' : 'failure', 0);
    this.log.info(`leading: serving ${this.options.modelId} on ${this.address}`);
  }

  private stepDown(reason: string): void {
    if (this.role === 'stopped') return;
    this.role = 'standby';
    this.log.warn(`no longer leader (${reason}): standing by`);
    this.started.lifecycle.closePipeline();
    this.started.scheduler.abortAll(new UnavailableError(`this coordinator stepped down: ${reason}; retry on the leader`));
  }

  /** The serving pipeline broke: probe the plan's workers (unless that just happened), then plan. */
  private onDataPathFailed(): void {
    const { watchdog, lifecycle } = this.started;
    if (watchdog.probedRecently()) lifecycle.schedule('failure', 0);
    else void watchdog.probe().finally(() => lifecycle.schedule('failure', 0));
  }

  /** Plans the cluster without `workerId` and resolves once that plan serves. */
  async drain(workerId: WorkerId): Promise<number> {
    const { lifecycle } = this.started;
    if (!this.membership.members().has(workerId)) throw new NotFoundError(`no worker "${workerId}" is registered`);
    this.draining.add(workerId);
    const current = lifecycle.current();
    if (current !== undefined && lifecycle.plan !== undefined && !workersOf(lifecycle.plan).includes(workerId)) return current.epoch;
    lifecycle.schedule('operator', 0);
    const pipeline = await lifecycle.next(lifecycle.plan?.epoch);
    const plan = lifecycle.plan;
    if (plan === undefined || workersOf(plan).includes(workerId)) throw new UnavailableError(`could not plan without ${workerId}`);
    return pipeline.epoch;
  }

  /** /readyz's and grpc.health.v1's condition: leading with a serving plan, or a standby behind a leader that published one. */
  private async readyState(): Promise<ReadyState> {
    const parts = this.parts;
    if (parts === undefined || this.role === 'stopped') return { ready: false, detail: this.role === 'stopped' ? 'stopping' : 'starting' };
    if (this.stopping) return { ready: false, detail: 'stopping; finishing the requests it runs' };
    if (this.role === 'leading') {
      const pipeline = parts.lifecycle.current();
      return pipeline === undefined ? { ready: false, detail: 'leading; no plan serves yet' } : { ready: true, detail: `leading; serving plan ${pipeline.epoch}` };
    }
    // Campaigning or demoted: a standby either way.
    if (parts.leadership.etcdOutage()) return { ready: false, detail: 'standby; etcd does not answer' };
    const [leader, plan] = await Promise.all([parts.leadership.leaderAddress(), this.plans.current()]);
    if (leader === undefined) return { ready: false, detail: 'standby; no leader' };
    if (plan === undefined) return { ready: false, detail: `standby behind ${leader}; no plan published` };
    return { ready: true, detail: `standby behind ${leader}, which publishes plan ${plan.epoch}` };
  }

  /** Throws UNAVAILABLE on a standby, so clients move on to the leader. */
  checkServing(): void {
    if (this.stopping) throw new UnavailableError('this coordinator is stopping; retry on another coordinator');
    if (this.role !== 'leading') throw new UnavailableError('this coordinator is a standby; retry on the leader');
  }

  status(): Promise<ClusterStatus> {
    const { lifecycle, scheduler } = this.started;
    return clusterStatus({
      model: this.options.modelId,
      plan: lifecycle.plan,
      planLoaded: lifecycle.planLoaded,
      members: this.membership.members(),
      activeSequences: scheduler.activeSequences,
      waitingRequests: scheduler.waitingSequences,
      serving: lifecycle.current() !== undefined && this.role === 'leading' && !this.stopping,
      replanIdle: lifecycle.idle,
      security: this.security,
    });
  }

  /**
   * SIGTERM (graceful-stop.ts): a leader refuses new requests with UNAVAILABLE, lets the running
   * ones finish within drainTimeoutMs, hands any left to the next leader as a failover does, and
   * resigns at once in stop(), so that a standby leads without waiting out the lease TTL. A
   * standby just stops. Resolves with the number of requests handed over.
   */
  async gracefulStop(): Promise<number> {
    let left = 0;
    if (this.role === 'leading' && this.parts !== undefined) {
      const { scheduler } = this.parts;
      this.stopping = true;
      this.health.setAll('NOT_SERVING');
      const timeoutMs = this.options.drainTimeoutMs ?? DEFAULT_COORDINATOR_DRAIN_TIMEOUT_MS;
      const deadlineMs = performance.now() + timeoutMs;
      this.log(`stopping: refusing new requests; waiting up to ${timeoutMs} ms for ${scheduler.activeSequences} running`);
      left = await waitForRequests({ inFlight: () => scheduler.activeSequences, timeoutMs });
      this.log(left === 0 ? 'stopping: every request finished; resigning leadership' : `stopping: ${left} requests still run after ${timeoutMs} ms; handing them to the next leader and resigning`);
      scheduler.abortAll(new UnavailableError('this coordinator is stopping; retry on another coordinator (the request resumes there)'));
      // A finished or aborted request's last events may still wait for a slow client to read
      // them: its call gets the rest of the drain time, and at least STREAM_FLUSH_MS, to end.
      this.serverCloseGraceMs = Math.max(STREAM_FLUSH_MS, deadlineMs - performance.now());
    }
    await this.stop();
    return left;
  }

  async stop(): Promise<void> {
    this.role = 'stopped';
    this.readiness.stop();
    this.health.setAll('NOT_SERVING');
    this.health.close();
    const parts = this.parts;
    if (parts !== undefined) {
      parts.lifecycle.stop();
      parts.watchdog.stop();
      parts.rebalancer?.stop();
      parts.scheduler.abortAll(new UnavailableError('the coordinator is shutting down'));
      // Resign first: a standby leads at once, while the servers below close.
      await parts.leadership.stop();
      await parts.httpApi?.close();
      await parts.server.close(this.serverCloseGraceMs);
      await parts.metricsServer?.close();
    }
    await this.membership.close();
    await parts?.pool.close();
    await parts?.tokenizerPool.close();
    this.etcd.close();
  }
}

/**
 * What the model takes on these workers: each tensor at its stored size (a quantized model packs
 * by its quantized size) if all keep weights as stored, float32 copies otherwise.
 */
function modelFootprintOf(ckpt: ModelCheckpoint, members: readonly MemberInfo[]): ModelFootprint {
  if (!keepsStoredWeights(members)) return modelFootprint(ckpt.config);
  return footprintFromSizes(ckpt.config, (spec) => storedTensorBytes(ckpt, spec.name));
}
