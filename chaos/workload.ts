/**
 * The requests of a scenario and the client that sends them, recording every event.
 *
 * Requests are greedy (deterministic), with prompts of different lengths made from a seed, and
 * `ignoreEos` so every completed stream has exactly `maxTokens` tokens. Each request runs in a
 * "lane" (lane i always sends prompt i, so the fault-free reference of lane i is its oracle):
 * `once` sends each lane's request once; `lanes` keeps every lane busy until told to stop.
 *
 * The client knows every coordinator. A coordinator that answers UNAVAILABLE before any token
 * (a standby, or one with no pipeline yet) sends it to the next one in the list, after a short
 * backoff; that is routing, not a failure. A stream that breaks after tokens came is a failure,
 * unless the scenario lets clients retry on UNAVAILABLE (coordinator failover): then the request
 * starts again from scratch on another coordinator, and the broken attempt is kept for the check
 * that what it showed was a prefix of the reference.
 *
 * On a secure cluster each request goes over TLS with an API key: the one its spec names
 * (`keyName`, so that S12 can spread its load over several keys), else the cluster's default
 * client key; `access` turns a spec into those credentials.
 */
import type { CoordinatorAccess } from '../cli/client-credentials';
import { generateOnce } from '../cli/inference-client';
import { asBoraError, type ErrorCode } from '../common/errors';
import type { GenerationRequest } from '../common/generation/request';
import { sleep, type Timeline } from './timeline';

export interface RequestSpec {
  readonly lane: number;
  readonly promptIds: readonly number[];
  readonly maxTokens: number;
  /** Sent instead of promptIds when set (S12's oversized prompts: text is what a byte limit bounds). */
  readonly promptText?: string;
  /** The API key (by name) the request is sent with on a secure cluster; the default client key when absent. */
  readonly keyName?: string;
}

/** Credentials for a request's calls; undefined for plaintext. */
export type RequestAccess = (spec: RequestSpec) => CoordinatorAccess | undefined;

export interface TokenRecord {
  readonly index: number;
  readonly tokenId: number;
  /** Arrival time on the run's clock. */
  readonly atMs: number;
}

export interface Attempt {
  readonly coordinator: string;
  readonly startedAtMs: number;
  endedAtMs?: number;
  readonly tokens: TokenRecord[];
  finished: boolean;
  error?: { readonly code: ErrorCode; readonly message: string };
}

export interface RequestRecord {
  readonly lane: number;
  readonly iteration: number;
  readonly spec: RequestSpec;
  readonly attempts: Attempt[];
  /** The attempt that completed, if one did. */
  completed?: Attempt;
}

export interface ClientPolicy {
  /** Start again on UNAVAILABLE after tokens came (coordinator failover). */
  readonly retryMidStream: boolean;
  /** Per request, all attempts together. */
  readonly deadlineMs: number;
}

const BACKOFF_INITIAL_MS = 100;
const BACKOFF_MAX_MS = 1000;
const BOS = 1;

/** A small deterministic generator (mulberry32) so prompts and random schedules repeat run to run. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `count` requests; lane i's prompt has minLength + i * step tokens (BOS first), ids in [100, vocab). */
export function makeRequests(count: number, minLength: number, step: number, maxTokens: number, vocabSize: number, seed = 7): RequestSpec[] {
  const random = seededRandom(seed);
  return Array.from({ length: count }, (_, lane) => {
    const length = minLength + lane * step;
    const ids = [BOS, ...Array.from({ length: length - 1 }, () => 100 + Math.floor(random() * (vocabSize - 100)))];
    return { lane, promptIds: ids, maxTokens };
  });
}

function toRequest(spec: RequestSpec): GenerationRequest {
  return { prompt: spec.promptText === undefined ? { kind: 'ids', ids: spec.promptIds } : { kind: 'text', text: spec.promptText }, maxTokens: spec.maxTokens, sampling: { kind: 'greedy' }, stop: [], ignoreEos: true, returnFirstLogits: false };
}

export class Workload {
  readonly records: RequestRecord[] = [];
  private tokenCount = 0;
  private tokenWaiters: { count: number; resolve: () => void }[] = [];
  /** Index into coordinators() of the one that last served a stream. */
  private preferred = 0;
  private stopping = false;

  constructor(
    private readonly coordinators: () => readonly string[],
    private readonly policy: ClientPolicy,
    private readonly timeline: Timeline,
    private readonly access: RequestAccess = () => undefined,
  ) {}

  /** Tokens received so far, over every stream. */
  get tokensReceived(): number {
    return this.tokenCount;
  }

  /** Every token arrival time, sorted. */
  arrivalTimesMs(): number[] {
    return this.records.flatMap((r) => r.attempts.flatMap((a) => a.tokens.map((t) => t.atMs))).sort((a, b) => a - b);
  }

  /** Resolves once `count` tokens have arrived in total. */
  untilTokens(count: number): Promise<void> {
    if (this.tokenCount >= count) return Promise.resolve();
    return new Promise((resolve) => this.tokenWaiters.push({ count, resolve }));
  }

  /** Each request once, all at the same time. */
  runOnce(specs: readonly RequestSpec[]): Promise<RequestRecord[]> {
    return Promise.all(specs.map((spec) => this.send(spec, 0)));
  }

  /** Every lane sends its request again and again until stop(); resolves when all lanes are done. */
  async runLanes(specs: readonly RequestSpec[]): Promise<RequestRecord[]> {
    this.stopping = false;
    const lanes = specs.map(async (spec) => {
      const mine: RequestRecord[] = [];
      for (let iteration = 0; !this.stopping; iteration++) {
        const record = await this.send(spec, iteration);
        mine.push(record);
        if (record.completed === undefined) await sleep(BACKOFF_MAX_MS); // a failed request: do not spin
      }
      return mine;
    });
    return (await Promise.all(lanes)).flat();
  }

  /** Lanes finish the request they are on and send no more. */
  stop(): void {
    this.stopping = true;
  }

  private async send(spec: RequestSpec, iteration: number): Promise<RequestRecord> {
    const record: RequestRecord = { lane: spec.lane, iteration, spec, attempts: [] };
    this.records.push(record);
    const deadline = Date.now() + this.policy.deadlineMs;
    let backoffMs = BACKOFF_INITIAL_MS;
    for (let turn = 0; Date.now() < deadline; turn++) {
      const list = this.coordinators();
      const index = (this.preferred + turn) % list.length;
      const attempt = await this.attempt(list[index], spec, deadline - Date.now());
      record.attempts.push(attempt);
      if (attempt.finished) {
        record.completed = attempt;
        this.preferred = index;
        return record;
      }
      const unavailable = attempt.error?.code === 'UNAVAILABLE';
      const routing = unavailable && attempt.tokens.length === 0 && list.length > 1;
      if (!routing && !(unavailable && this.policy.retryMidStream)) return record;
      await sleep(backoffMs);
      backoffMs = Math.min(backoffMs * 2, BACKOFF_MAX_MS);
    }
    return record;
  }

  private async attempt(coordinator: string, spec: RequestSpec, remainingMs: number): Promise<Attempt> {
    const attempt: Attempt = { coordinator, startedAtMs: this.timeline.nowMs(), tokens: [], finished: false };
    try {
      // One call to one coordinator: the harness's own retries make every attempt visible (the
      // product's generateRemote would retry inside and hide broken streams).
      await generateOnce(
        coordinator,
        toRequest(spec),
        (event) => {
          if (event.type === 'token') {
            attempt.tokens.push({ index: event.index, tokenId: event.tokenId, atMs: this.timeline.nowMs() });
            this.countToken();
          } else {
            attempt.finished = true;
          }
        },
        Date.now() + Math.max(1, remainingMs),
        this.access(spec),
      );
      if (!attempt.finished) attempt.error = { code: 'INTERNAL', message: 'the stream ended without a finish event' };
    } catch (err) {
      const bora = asBoraError(err);
      attempt.finished = false;
      attempt.error = { code: bora.code, message: bora.message };
    }
    attempt.endedAtMs = this.timeline.nowMs();
    return attempt;
  }

  private countToken(): void {
    this.tokenCount += 1;
    if (this.tokenWaiters.length === 0) return;
    const due = this.tokenWaiters.filter((w) => w.count <= this.tokenCount);
    this.tokenWaiters = this.tokenWaiters.filter((w) => w.count > this.tokenCount);
    for (const w of due) w.resolve();
  }
}
