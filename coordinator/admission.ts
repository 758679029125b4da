/**
 * Admission control for the client API: per-key limits and one bounded queue, so that no key, and
 * no burst from all keys together, can stall other users.
 *
 * Per key (the API key's name):
 *   - requests per second: a token bucket (burst = requestBurst), charged one per admitted request;
 *   - generated tokens per minute: a bucket charged as tokens are generated (recordTokens), which
 *     may go into debt; a new request is admitted only when the key is out of debt. Charging after
 *     the fact avoids reserving max_tokens up front, which would refuse small requests needlessly;
 *     the cost is that one request can overshoot by its own length, once;
 *   - concurrent streams: admitted plus queued, so one key cannot fill the queue either.
 *
 * Cluster-wide, at most maxActiveStreams run; the next maxQueuedStreams wait in FIFO order for at
 * most maxQueueWaitMs. Everything past that is refused at once: a refusal is always immediate and
 * cheap, never a stall. Every refusal is an AdmissionRefusedError (RESOURCE_EXHAUSTED) with a
 * retry-after hint: exact for the rate buckets, `busyRetryAfterMs` where it depends on when
 * other streams end. Requests that are refused are not charged.
 */
import { BoraError, InvalidArgumentError } from '../common/errors';
import { AdmissionRefusedError } from './admission-error';
import { type AdmissionClock, TokenBucket, systemAdmissionClock } from './token-bucket';

export interface KeyLimits {
  readonly requestsPerSecond: number;
  /** Requests allowed back to back after a quiet spell; default max(1, requestsPerSecond). */
  readonly requestBurst?: number;
  readonly tokensPerMinute: number;
  readonly maxConcurrentStreams: number;
}

export interface AdmissionOptions {
  readonly defaultLimits: KeyLimits;
  /** Limits for particular keys, by key name; others get defaultLimits. */
  readonly limitsByKey?: Readonly<Record<string, KeyLimits>>;
  readonly maxActiveStreams: number;
  readonly maxQueuedStreams: number;
  readonly maxQueueWaitMs: number;
  /** The retry-after hint when a concurrency or queue limit refuses; default 1000 ms. */
  readonly busyRetryAfterMs?: number;
  readonly clock?: AdmissionClock;
}

/** An admitted request. release() exactly when its stream ends (extra calls are ignored). */
export interface AdmissionTicket {
  readonly key: string;
  /** Charges `count` generated tokens to the key's per-minute budget. */
  recordTokens(count: number): void;
  release(): void;
}

export const DEFAULT_BUSY_RETRY_AFTER_MS = 1_000;

interface KeyState {
  readonly limits: KeyLimits;
  readonly requests: TokenBucket;
  readonly tokens: TokenBucket;
  /** Active plus queued streams of this key. */
  streams: number;
}

interface Waiter {
  readonly state: KeyState;
  readonly key: string;
  readonly resolve: (ticket: AdmissionTicket) => void;
  readonly reject: (err: Error) => void;
  readonly timer: { cancel(): void };
  readonly detach: () => void;
}

function positiveInteger(value: number, what: string): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new InvalidArgumentError(`${what} must be a positive integer, got ${value}`);
  return value;
}

function positiveNumber(value: number, what: string): number {
  if (!(Number.isFinite(value) && value > 0)) throw new InvalidArgumentError(`${what} must be a positive number, got ${value}`);
  return value;
}

function checkLimits(limits: KeyLimits, where: string): KeyLimits {
  positiveNumber(limits.requestsPerSecond, `${where}.requestsPerSecond`);
  if (limits.requestBurst !== undefined) positiveInteger(limits.requestBurst, `${where}.requestBurst`);
  positiveInteger(limits.tokensPerMinute, `${where}.tokensPerMinute`);
  positiveInteger(limits.maxConcurrentStreams, `${where}.maxConcurrentStreams`);
  return limits;
}

export class Admission {
  private readonly clock: AdmissionClock;
  private readonly keys = new Map<string, KeyState>();
  private readonly queue: Waiter[] = [];
  private active = 0;
  private readonly busyRetryAfterMs: number;

  constructor(private readonly options: AdmissionOptions) {
    checkLimits(options.defaultLimits, 'defaultLimits');
    for (const [key, limits] of Object.entries(options.limitsByKey ?? {})) checkLimits(limits, `limitsByKey.${key}`);
    positiveInteger(options.maxActiveStreams, 'maxActiveStreams');
    if (!Number.isSafeInteger(options.maxQueuedStreams) || options.maxQueuedStreams < 0) {
      throw new InvalidArgumentError(`maxQueuedStreams must be a non-negative integer, got ${options.maxQueuedStreams}`);
    }
    positiveInteger(options.maxQueueWaitMs, 'maxQueueWaitMs');
    this.busyRetryAfterMs = positiveInteger(options.busyRetryAfterMs ?? DEFAULT_BUSY_RETRY_AFTER_MS, 'busyRetryAfterMs');
    this.clock = options.clock ?? systemAdmissionClock;
  }

  /** Streams running and waiting now, cluster-wide. */
  load(): { activeStreams: number; queuedStreams: number } {
    return { activeStreams: this.active, queuedStreams: this.queue.length };
  }

  /**
   * Admits a request of `key`: resolves at once when there is room, after a wait in the queue
   * otherwise; rejects with AdmissionRefusedError past any limit, or CANCELLED when `signal`
   * aborts while it waits.
   */
  admit(key: string, signal?: AbortSignal): Promise<AdmissionTicket> {
    try {
      if (signal?.aborted === true) throw new BoraError('CANCELLED', 'request cancelled before admission');
      const state = this.stateOf(key);
      if (state.streams >= state.limits.maxConcurrentStreams) {
        throw new AdmissionRefusedError('concurrent-streams', this.busyRetryAfterMs, `API key ${key} has ${state.streams} streams open or queued (limit ${state.limits.maxConcurrentStreams})`);
      }
      if (state.tokens.level() < 1) {
        throw new AdmissionRefusedError('tokens-per-minute', state.tokens.waitMs(1), `API key ${key} used its ${state.limits.tokensPerMinute} generated tokens per minute`);
      }
      const mustQueue = this.active >= this.options.maxActiveStreams || this.queue.length > 0;
      if (mustQueue && this.queue.length >= this.options.maxQueuedStreams) {
        throw new AdmissionRefusedError('queue-full', this.busyRetryAfterMs, `the server is at capacity (${this.active} streams running, ${this.queue.length} queued)`);
      }
      if (!state.requests.tryTake(1)) {
        throw new AdmissionRefusedError('requests-per-second', state.requests.waitMs(1), `API key ${key} is over ${state.limits.requestsPerSecond} requests per second`);
      }
      state.streams += 1;
      if (!mustQueue) {
        this.active += 1;
        return Promise.resolve(this.ticket(key, state));
      }
      return this.enqueue(key, state, signal);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private stateOf(key: string): KeyState {
    let state = this.keys.get(key);
    if (state === undefined) {
      const limits = this.options.limitsByKey?.[key] ?? this.options.defaultLimits;
      state = {
        limits,
        requests: new TokenBucket(limits.requestBurst ?? Math.max(1, limits.requestsPerSecond), limits.requestsPerSecond, this.clock),
        tokens: new TokenBucket(limits.tokensPerMinute, limits.tokensPerMinute / 60, this.clock),
        streams: 0,
      };
      this.keys.set(key, state);
    }
    return state;
  }

  private enqueue(key: string, state: KeyState, signal: AbortSignal | undefined): Promise<AdmissionTicket> {
    return new Promise<AdmissionTicket>((resolve, reject) => {
      const leave = (err: Error): void => {
        const index = this.queue.indexOf(waiter);
        if (index < 0) return; // already admitted
        this.queue.splice(index, 1);
        waiter.timer.cancel();
        waiter.detach();
        state.streams -= 1;
        reject(err);
      };
      const onAbort = (): void => leave(new BoraError('CANCELLED', 'request cancelled while queued for admission'));
      signal?.addEventListener('abort', onAbort, { once: true });
      const waiter: Waiter = {
        state,
        key,
        resolve,
        reject,
        timer: this.clock.setTimer(
          () => leave(new AdmissionRefusedError('queue-timeout', this.busyRetryAfterMs, `no capacity freed within ${this.options.maxQueueWaitMs} ms`)),
          this.options.maxQueueWaitMs,
        ),
        detach: () => signal?.removeEventListener('abort', onAbort),
      };
      this.queue.push(waiter);
    });
  }

  private ticket(key: string, state: KeyState): AdmissionTicket {
    let released = false;
    return {
      key,
      recordTokens: (count) => state.tokens.charge(count),
      release: () => {
        if (released) return;
        released = true;
        state.streams -= 1;
        this.active -= 1;
        this.dispatch();
      },
    };
  }

  private dispatch(): void {
    while (this.active < this.options.maxActiveStreams && this.queue.length > 0) {
      const waiter = this.queue.shift() as Waiter;
      waiter.timer.cancel();
      waiter.detach();
      this.active += 1;
      waiter.resolve(this.ticket(waiter.key, waiter.state));
    }
  }
}
