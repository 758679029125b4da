/**
 * The coordinator's Prometheus metrics. Each instance owns its own Registry (never prom-client's
 * global one), so every process and every test gets an independent set; serve it with
 * startMetricsServer(metrics.registry, ...).
 *
 * Durations are taken in seconds, the Prometheus base unit; counts are plain numbers. Bucket
 * choices are explained in buckets.ts. The process's own health (CPU seconds, resident memory,
 * heap, event-loop lag) comes from prom-client's collectDefaultMetrics with the prefix
 * `bora_coordinator_` (e.g. bora_coordinator_process_cpu_seconds_total,
 * bora_coordinator_process_resident_memory_bytes), as the workers' carry `bora_worker_`; the cost
 * signal, CPU seconds per 1,000 generated tokens, is a recording rule over both
 * (deploy/prometheus/bora-rules.yml).
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import {
  INTER_TOKEN_BUCKETS_SECONDS,
  QUEUE_WAIT_BUCKETS_SECONDS,
  RECOVERY_BUCKETS_SECONDS,
  REQUEST_DURATION_BUCKETS_SECONDS,
  REQUEST_TOKENS_BUCKETS,
  TIME_TO_FIRST_TOKEN_BUCKETS_SECONDS,
  EMBEDDING_BUCKETS_SECONDS,
} from '../common/metrics/buckets';
import { registerBuildInfo } from '../common/metrics/build-info';
import type { GenerationEvent } from '../common/generation/request';
import type { BoraError } from '../common/errors';
import { DEFAULT_RATE_WINDOW_MS, type MonotonicClockMs, RateWindow } from '../common/metrics/rate-window';

/** How a generation request ended. */
/** `refused`: no or a bad API key, a role not allowed, or past an admission limit. */
export const REQUEST_OUTCOMES = ['ok', 'cancelled', 'invalid', 'refused', 'unavailable', 'deadline', 'error'] as const;
export type RequestOutcome = (typeof REQUEST_OUTCOMES)[number];

/** How a request that failed with `err` ended, for bora_requests_total (every client API). */
export function outcomeOf(err: BoraError): RequestOutcome {
  switch (err.code) {
    case 'CANCELLED':
      return 'cancelled';
    case 'INVALID_ARGUMENT':
    case 'NOT_FOUND':
      return 'invalid';
    case 'UNAUTHENTICATED':
    case 'PERMISSION_DENIED':
    case 'RESOURCE_EXHAUSTED':
      return 'refused';
    case 'UNAVAILABLE':
      return 'unavailable';
    case 'DEADLINE_EXCEEDED':
      return 'deadline';
    default:
      return 'error';
  }
}

/**
 * What made the coordinator publish a new plan: a member joined, left (lease expired or revoked)
 * or changed its record, an operator asked, or the data path of the current plan failed.
 */
export const RESHARD_REASONS = ['join', 'leave', 'update', 'operator', 'failure'] as const;
export type ReshardReason = (typeof RESHARD_REASONS)[number];

/** The safety filter (coordinator/safety/): where it acted, and how. */
export const SAFETY_STAGES = ['prompt', 'output'] as const;
export const SAFETY_ACTIONS = ['block', 'redact'] as const;
/** What a failed call to the moderation service led to, by --safety-fail open / closed. */
export const MODERATION_FAILURE_OUTCOMES = ['allowed', 'blocked'] as const;

export interface CoordinatorMetricsOptions {
  /** Monotonic clock for the tokens/s window; performance.now() by default. */
  readonly now?: MonotonicClockMs;
  /** Window of bora_tokens_per_second; 10 s by default. */
  readonly tokensPerSecondWindowMs?: number;
  /** The model served, for bora_build_info; none when absent. */
  readonly model?: string;
  /** Process metrics (CPU, memory, event loop) as bora_coordinator_*; on by default. */
  readonly processMetrics?: boolean;
}

/** The prefix of the coordinator process's default metrics. */
export const COORDINATOR_DEFAULT_METRICS_PREFIX = 'bora_coordinator_';

/** The scheduler's sequences: all of them, and those not yet part of any micro-batch. */
export interface QueueDepth {
  readonly active: number;
  readonly waiting: number;
}

export class CoordinatorMetrics {
  readonly registry = new Registry();
  private queueSource: (() => QueueDepth) | undefined;

  private readonly requests: Counter<'outcome'>;
  private readonly httpResponses: Counter<'endpoint' | 'status'>;
  private readonly timeToFirstToken: Histogram;
  private readonly embedding: Histogram;
  private readonly interToken: Histogram;
  private readonly generatedTokens: Counter;
  private readonly tokenRate: RateWindow;
  private readonly activeSequences: Gauge;
  private readonly waitingRequests: Gauge;
  private readonly members: Gauge;
  private readonly planEpoch: Gauge;
  private readonly reshards: Counter<'reason'>;
  private readonly resumedSequences: Counter;
  private readonly recovery: Histogram;
  private readonly handoverPause: Histogram;
  private readonly requestDuration: Histogram;
  private readonly queueWait: Histogram;
  private readonly requestTokens: Histogram<'kind'>;
  private readonly resumes: Counter;
  private readonly safetyIncidents: Counter<'stage' | 'action'>;
  private readonly moderationFailures: Counter<'outcome'>;

  constructor(options: CoordinatorMetricsOptions = {}) {
    const registers = [this.registry];
    this.tokenRate = new RateWindow({ windowMs: options.tokensPerSecondWindowMs, now: options.now });
    const windowSeconds = (options.tokensPerSecondWindowMs ?? DEFAULT_RATE_WINDOW_MS) / 1000;

    this.requests = new Counter({
      name: 'bora_requests_total',
      help: 'Generation requests finished, by outcome.',
      labelNames: ['outcome'],
      registers,
    });
    this.embedding = new Histogram({
      name: 'bora_embedding_seconds',
      help: 'One embeddings call (gRPC Embed or HTTP /v1/embeddings), from the call to its last vector (the embedding-latency SLI).',
      buckets: [...EMBEDDING_BUCKETS_SECONDS],
      registers,
    });
    this.httpResponses = new Counter({
      name: 'bora_http_responses_total',
      help: 'Responses of the OpenAI-compatible HTTP API, by endpoint and status (a stream counts once, with the status it ended with).',
      labelNames: ['endpoint', 'status'],
      registers,
    });
    this.timeToFirstToken = new Histogram({
      name: 'bora_time_to_first_token_seconds',
      help: 'From request accepted to its first generated token (queueing + prefill).',
      buckets: [...TIME_TO_FIRST_TOKEN_BUCKETS_SECONDS],
      registers,
    });
    this.interToken = new Histogram({
      name: 'bora_inter_token_seconds',
      help: 'Between consecutive generated tokens of one sequence.',
      buckets: [...INTER_TOKEN_BUCKETS_SECONDS],
      registers,
    });
    this.generatedTokens = new Counter({
      name: 'bora_generated_tokens_total',
      help: 'Tokens generated (sampled), all sequences; its rate() is the throughput.',
      registers,
    });
    const tokenRate = this.tokenRate;
    new Gauge({
      name: 'bora_tokens_per_second',
      help: `Tokens generated per second over the last ${windowSeconds} s, computed at scrape time.`,
      registers,
      collect(this: Gauge) {
        this.set(tokenRate.perSecond());
      },
    });
    const queue = (): QueueDepth | undefined => this.queueSource?.();
    this.activeSequences = new Gauge({
      name: 'bora_active_sequences',
      help: 'Sequences currently generating.',
      registers,
      collect(this: Gauge) {
        this.set(queue()?.active ?? 0);
      },
    });
    this.waitingRequests = new Gauge({
      name: 'bora_waiting_requests',
      help: 'Requests accepted but not yet admitted to a batch (queue depth).',
      registers,
      collect(this: Gauge) {
        this.set(queue()?.waiting ?? 0);
      },
    });
    this.members = new Gauge({ name: 'bora_members', help: 'Live workers in the cluster.', registers });
    this.planEpoch = new Gauge({ name: 'bora_plan_epoch', help: 'Epoch of the plan being served.', registers });
    this.reshards = new Counter({
      name: 'bora_reshards_total',
      help: 'New plans published after the first, by what caused them.',
      labelNames: ['reason'],
      registers,
    });
    this.resumedSequences = new Counter({
      name: 'bora_resumed_sequences_total',
      help: 'Sequences replayed onto a new plan after a failure and resumed.',
      registers,
    });
    this.recovery = new Histogram({
      name: 'bora_recovery_seconds',
      help: 'From a failure detected to generation running again on the new plan.',
      buckets: [...RECOVERY_BUCKETS_SECONDS],
      registers,
    });
    this.handoverPause = new Histogram({
      name: 'bora_handover_pause_seconds',
      help: 'A planned hand-over: how long new micro-batches were held back (quiesce, cache copy, switch).',
      buckets: [...INTER_TOKEN_BUCKETS_SECONDS],
      registers,
    });
    this.safetyIncidents = new Counter({
      name: 'bora_safety_incidents_total',
      help: 'Safety filter incidents: a rule or the moderation service acted on a prompt or on generated text.',
      labelNames: ['stage', 'action'],
      registers,
    });
    this.moderationFailures = new Counter({
      name: 'bora_safety_moderation_failures_total',
      help: 'Calls to the moderation service that failed (timeout, error, bad reply), by what --safety-fail made of them.',
      labelNames: ['outcome'],
      registers,
    });

    this.requestDuration = new Histogram({
      name: 'bora_request_duration_seconds',
      help: 'A generation request that finished, from accepted to its last token (queueing, prefill, decode and any recovery it waited out).',
      buckets: [...REQUEST_DURATION_BUCKETS_SECONDS],
      registers,
    });
    this.queueWait = new Histogram({
      name: 'bora_queue_wait_seconds',
      help: 'From a sequence submitted to the scheduler to its first micro-batch.',
      buckets: [...QUEUE_WAIT_BUCKETS_SECONDS],
      registers,
    });
    this.requestTokens = new Histogram({
      name: 'bora_request_tokens',
      help: 'Tokens of one finished request: kind="prompt" (as tokenized) or kind="generated".',
      labelNames: ['kind'],
      buckets: [...REQUEST_TOKENS_BUCKETS],
      registers,
    });
    this.resumes = new Counter({
      name: 'bora_resumes_total',
      help: 'Resumes of finished requests after a failure, counting each replay (a sequence may resume more than once).',
      registers,
    });
    registerBuildInfo(this.registry, { role: 'coordinator', model: options.model ?? '' });
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: COORDINATOR_DEFAULT_METRICS_PREFIX });

    // Every known label value starts at 0, so that rate() and absent() see a series from the
    // first scrape rather than from the first event.
    for (const outcome of REQUEST_OUTCOMES) this.requests.inc({ outcome }, 0);
    for (const reason of RESHARD_REASONS) this.reshards.inc({ reason }, 0);
    for (const stage of SAFETY_STAGES) for (const action of SAFETY_ACTIONS) this.safetyIncidents.inc({ stage, action }, 0);
    for (const outcome of MODERATION_FAILURE_OUTCOMES) this.moderationFailures.inc({ outcome }, 0);
  }

  /** A generation's events: each token counts; its finish gives time to first token, inter-token latency and resumes. */
  /** One embeddings call's latency. */
  observeEmbedding(seconds: number): void {
    this.embedding.observe(seconds);
  }

  observeGeneration(event: GenerationEvent): void {
    if (event.type === 'token') {
      this.countGeneratedTokens(1);
      return;
    }
    this.observeTimeToFirstToken(event.timeToFirstTokenMs / 1000);
    if (event.generatedTokens > 1) this.observeInterToken((event.totalMs - event.timeToFirstTokenMs) / 1000 / (event.generatedTokens - 1));
    if (event.resumes > 0) this.countResumedSequences(1);
    this.resumes.inc(event.resumes);
    this.requestDuration.observe(event.totalMs / 1000);
    this.requestTokens.observe({ kind: 'prompt' }, event.promptTokens);
    this.requestTokens.observe({ kind: 'generated' }, event.generatedTokens);
  }

  /** A sequence waited `seconds` in the scheduler before its first micro-batch. */
  observeQueueWait(seconds: number): void {
    this.queueWait.observe(seconds);
  }

  countRequest(outcome: RequestOutcome): void {
    this.requests.inc({ outcome });
  }

  /** One response of the HTTP API (coordinator/http/). */
  countHttpResponse(endpoint: string, status: number): void {
    this.httpResponses.inc({ endpoint, status: String(status) });
  }

  observeTimeToFirstToken(seconds: number): void {
    this.timeToFirstToken.observe(seconds);
  }

  observeInterToken(seconds: number): void {
    this.interToken.observe(seconds);
  }

  /** Feeds both bora_generated_tokens_total and the bora_tokens_per_second window. */
  countGeneratedTokens(tokens: number): void {
    this.generatedTokens.inc(tokens);
    this.tokenRate.add(tokens);
  }

  /** Reads bora_active_sequences and bora_waiting_requests from `source` at every scrape. */
  readQueueFrom(source: () => QueueDepth): void {
    this.queueSource = source;
  }

  setMembers(count: number): void {
    this.members.set(count);
  }

  setPlanEpoch(epoch: number): void {
    this.planEpoch.set(epoch);
  }

  countReshard(reason: ReshardReason): void {
    this.reshards.inc({ reason });
  }

  countResumedSequences(count: number): void {
    this.resumedSequences.inc(count);
  }

  observeRecovery(seconds: number): void {
    this.recovery.observe(seconds);
  }

  observeHandoverPause(seconds: number): void {
    this.handoverPause.observe(seconds);
  }

  countSafetyIncident(stage: (typeof SAFETY_STAGES)[number], action: (typeof SAFETY_ACTIONS)[number]): void {
    this.safetyIncidents.inc({ stage, action });
  }

  countModerationFailure(outcome: (typeof MODERATION_FAILURE_OUTCOMES)[number]): void {
    this.moderationFailures.inc({ outcome });
  }
}
