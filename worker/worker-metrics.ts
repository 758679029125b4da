/**
 * A worker's Prometheus metrics. Each instance owns its own Registry (never prom-client's global
 * one); serve it with startMetricsServer(metrics.registry, ...).
 *
 * Per-stage series carry a `stage` label (the stage index in the plan): a worker can hold more
 * than one stage (a primary and a standby), and drops a stage's series with removeStage() when a
 * new plan takes the stage away.
 *
 * Event-loop lag and process health come from prom-client's collectDefaultMetrics on this
 * registry with the prefix `bora_worker_` (e.g. bora_worker_nodejs_eventloop_lag_max_seconds,
 * the worst delay since the previous scrape, from perf_hooks.monitorEventLoopDelay at 10 ms
 * resolution; plus resident memory, heap and GC). A loop blocked for seconds costs the worker its
 * etcd lease, so the max is the series to alert on. Those samples describe the whole process, so
 * a process makes one WorkerMetrics.
 */
import { registerBuildInfo } from '../common/metrics/build-info';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { PrefixCacheStats } from './prefix-cache';
import { EXPERT_DISPATCH_BUCKETS_SECONDS, FORWARD_BATCH_BUCKETS_TOKENS, MODEL_LOAD_BUCKETS_SECONDS, STAGE_FORWARD_BUCKETS_SECONDS } from '../common/metrics/buckets';

export const WORKER_DEFAULT_METRICS_PREFIX = 'bora_worker_';

/** Why a worker refused a frame: an old plan epoch, a frame that does not decode, or no lease. */
export const FRAME_REJECT_REASONS = ['stale_epoch', 'malformed', 'not_serving', 'unauthenticated', 'permission_denied'] as const;
export type FrameRejectReason = (typeof FRAME_REJECT_REASONS)[number];

/**
 * Which copy of an expert served a call a stage dispatched: this worker's own (no network), the
 * plan's first holder, or another holder (after a failure of the preferred one).
 */
export const EXPERT_CALL_ROLES = ['local', 'primary', 'replica'] as const;
export type ExpertCallRole = (typeof EXPERT_CALL_ROLES)[number];

export class WorkerMetrics {
  readonly registry = new Registry();

  private readonly forward: Histogram<'stage'>;
  private readonly forwardBatch: Histogram<'stage'>;
  private readonly queueDepth: Gauge<'stage'>;
  private readonly kvCacheBytes: Gauge<'stage'>;
  private readonly kvSequences: Gauge<'stage'>;
  private readonly planEpoch: Gauge;
  private readonly modelLoad: Histogram;
  private readonly framesRejected: Counter<'reason'>;
  private readonly serving: Gauge;
  private readonly expertDispatch: Histogram;
  private readonly expertRun: Histogram;
  private readonly expertTokens: Counter<'layer' | 'expert'>;
  private readonly expertCalls: Counter<'role'>;
  private readonly expertHolderFailures: Counter;
  private readonly streamsCutOff: Counter<'stream'>;
  private readonly idleReleases: Counter;
  private readonly prefixHitTokens: Counter<'stage'>;
  private readonly prefixMissTokens: Counter<'stage'>;
  private readonly prefixEvictedBlocks: Counter<'stage'>;
  private readonly prefixBytes: Gauge<'stage'>;
  private readonly prefixBlocks: Gauge<'stage'>;
  /** The engine's running totals at the last update, per stage (counters grow by the difference). */
  private readonly prefixSeen = new Map<number, PrefixCacheStats>();
  private readonly memoryBudget: Gauge;

  constructor() {
    const registers = [this.registry];
    registerBuildInfo(this.registry, { role: 'worker', model: '' });
    this.memoryBudget = new Gauge({
      name: 'bora_worker_memory_budget_bytes',
      help: 'Bytes this worker offers for weights and KV caches (--memory-bytes); placement packs stages into it.',
      registers,
    });
    this.forward = new Histogram({
      name: 'bora_stage_forward_seconds',
      help: "One engine call of a stage: its layers' forward pass over one batch.",
      labelNames: ['stage'],
      buckets: [...STAGE_FORWARD_BUCKETS_SECONDS],
      registers,
    });
    this.forwardBatch = new Histogram({
      name: 'bora_stage_forward_batch_tokens',
      help: 'Tokens in one engine call of a stage (all sequences of the merged batch).',
      labelNames: ['stage'],
      buckets: [...FORWARD_BATCH_BUCKETS_TOKENS],
      registers,
    });
    this.queueDepth = new Gauge({
      name: 'bora_stage_queue_depth',
      help: 'Frames waiting for the stage engine.',
      labelNames: ['stage'],
      registers,
    });
    this.kvCacheBytes = new Gauge({
      name: 'bora_kv_cache_bytes',
      help: "Bytes held by the stage's key/value cache.",
      labelNames: ['stage'],
      registers,
    });
    this.kvSequences = new Gauge({
      name: 'bora_kv_sequences',
      help: "Sequences with entries in the stage's key/value cache.",
      labelNames: ['stage'],
      registers,
    });
    this.prefixHitTokens = new Counter({
      name: 'bora_prefix_cache_hit_tokens_total',
      help: "Prompt tokens whose prefill the stage skipped: their 16-token blocks came from its prefix cache.",
      labelNames: ['stage'],
      registers,
    });
    this.prefixMissTokens = new Counter({
      name: 'bora_prefix_cache_miss_tokens_total',
      help: 'Prompt tokens in full blocks looked up (first stage) or asked for (later stages) and not found, so computed (or, on a later stage, refused).',
      labelNames: ['stage'],
      registers,
    });
    this.prefixEvictedBlocks = new Counter({
      name: 'bora_prefix_cache_evicted_blocks_total',
      help: 'Prefix-cache blocks dropped to stay under --prefix-cache-bytes (on later stages: following the first stage).',
      labelNames: ['stage'],
      registers,
    });
    this.prefixBytes = new Gauge({
      name: 'bora_prefix_cache_bytes',
      help: "Bytes held by the stage's prefix cache (keys and values of its blocks).",
      labelNames: ['stage'],
      registers,
    });
    this.prefixBlocks = new Gauge({
      name: 'bora_prefix_cache_blocks',
      help: "Blocks of 16 tokens held by the stage's prefix cache.",
      labelNames: ['stage'],
      registers,
    });
    this.planEpoch = new Gauge({ name: 'bora_plan_epoch', help: 'Epoch of the plan this worker serves.', registers });
    this.modelLoad = new Histogram({
      name: 'bora_model_load_seconds',
      help: "Loading a stage's weights and building its sessions, per load.",
      buckets: [...MODEL_LOAD_BUCKETS_SECONDS],
      registers,
    });
    this.framesRejected = new Counter({
      name: 'bora_frames_rejected_total',
      help: 'Frames refused, by reason.',
      labelNames: ['reason'],
      registers,
    });
    this.serving = new Gauge({
      name: 'bora_lease_serving',
      help: '1 while this worker holds its etcd lease and serves its plan assignment, else 0.',
      registers,
    });
    this.expertDispatch = new Histogram({
      name: 'bora_expert_dispatch_seconds',
      help: "One RunExperts round trip from this worker's stage to a remote expert holder (send, compute, receive).",
      buckets: [...EXPERT_DISPATCH_BUCKETS_SECONDS],
      registers,
    });
    this.expertRun = new Histogram({
      name: 'bora_expert_run_seconds',
      help: 'One RunExperts call served by this worker for some stage: engine queueing and expert compute.',
      buckets: [...EXPERT_DISPATCH_BUCKETS_SECONDS],
      registers,
    });
    this.expertTokens = new Counter({
      name: 'bora_expert_tokens_total',
      help: "Tokens this worker's stage routed to each expert (one count per token per chosen expert).",
      labelNames: ['layer', 'expert'],
      registers,
    });
    this.expertCalls = new Counter({
      name: 'bora_expert_replica_calls_total',
      help: "Expert calls of this worker's stage, by which copy of the expert served them.",
      labelNames: ['role'],
      registers,
    });
    this.expertHolderFailures = new Counter({
      name: 'bora_expert_holder_failures_total',
      help: 'RunExperts calls that failed on a holder and were moved to another copy.',
      registers,
    });
    this.streamsCutOff = new Counter({
      name: 'bora_streams_cut_off_total',
      help: 'Server streams ended because their client stopped reading (over the unsent-bytes limit), by stream.',
      labelNames: ['stream'],
      registers,
    });
    this.idleReleases = new Counter({
      name: 'bora_idle_sequences_released_total',
      help: 'Sequences whose KV cache was freed because no frame reached them for the idle limit.',
      registers,
    });
    this.serving.set(0);
    for (const reason of FRAME_REJECT_REASONS) this.framesRejected.inc({ reason }, 0);
    for (const role of EXPERT_CALL_ROLES) this.expertCalls.inc({ role }, 0);
    collectDefaultMetrics({ register: this.registry, prefix: WORKER_DEFAULT_METRICS_PREFIX });
  }

  /** One engine call of `stage`: its duration and the tokens in its batch (the StageRunner hook). */
  observeForward(stage: number, seconds: number, tokens: number): void {
    const labels = { stage: String(stage) };
    this.forward.observe(labels, seconds);
    this.forwardBatch.observe(labels, tokens);
  }

  setQueueDepth(stage: number, frames: number): void {
    this.queueDepth.set({ stage: String(stage) }, frames);
  }

  setMemoryBudget(bytes: number): void {
    this.memoryBudget.set(bytes);
  }

  setKvCache(stage: number, bytes: number, sequences: number): void {
    const labels = { stage: String(stage) };
    this.kvCacheBytes.set(labels, bytes);
    this.kvSequences.set(labels, sequences);
  }

  /**
   * A stage's prefix cache as its engine reports it (running totals since the stage was loaded):
   * the counters grow by what was added since the last report; a smaller total means a new
   * engine (a reload), whose totals count from zero.
   */
  setPrefixCache(stage: number, stats: PrefixCacheStats): void {
    const labels = { stage: String(stage) };
    const seen = this.prefixSeen.get(stage);
    const grown = (now: number, before: number | undefined): number => (before === undefined || now < before ? now : now - before);
    this.prefixHitTokens.inc(labels, grown(stats.hitTokens, seen?.hitTokens));
    this.prefixMissTokens.inc(labels, grown(stats.missTokens, seen?.missTokens));
    this.prefixEvictedBlocks.inc(labels, grown(stats.evictedBlocks, seen?.evictedBlocks));
    this.prefixBytes.set(labels, stats.bytes);
    this.prefixBlocks.set(labels, stats.blocks);
    this.prefixSeen.set(stage, stats);
  }

  /** Drops every series of a stage this worker no longer holds. */
  removeStage(stage: number): void {
    const labels = { stage: String(stage) };
    const metrics = [this.forward, this.forwardBatch, this.queueDepth, this.kvCacheBytes, this.kvSequences, this.prefixHitTokens, this.prefixMissTokens, this.prefixEvictedBlocks, this.prefixBytes, this.prefixBlocks];
    for (const metric of metrics) metric.remove(labels);
    this.prefixSeen.delete(stage);
  }

  setPlanEpoch(epoch: number): void {
    this.planEpoch.set(epoch);
  }

  observeModelLoad(seconds: number): void {
    this.modelLoad.observe(seconds);
  }

  countRejectedFrame(reason: FrameRejectReason): void {
    this.framesRejected.inc({ reason });
  }

  countStreamCutOff(stream: string): void {
    this.streamsCutOff.inc({ stream });
  }

  countIdleReleases(sequences: number): void {
    this.idleReleases.inc(sequences);
  }

  setServing(serving: boolean): void {
    this.serving.set(serving ? 1 : 0);
  }

  observeExpertDispatch(seconds: number): void {
    this.expertDispatch.observe(seconds);
  }

  observeExpertRun(seconds: number): void {
    this.expertRun.observe(seconds);
  }

  /** `tokens` routed to expert `expert` of decoder layer `layer` (both 0-based). */
  countExpertTokens(layer: number, expert: number, tokens: number): void {
    this.expertTokens.inc({ layer: String(layer), expert: String(expert) }, tokens);
  }

  countExpertCall(role: ExpertCallRole, calls = 1): void {
    this.expertCalls.inc({ role }, calls);
  }

  countExpertHolderFailures(failures: number): void {
    this.expertHolderFailures.inc(failures);
  }
}
