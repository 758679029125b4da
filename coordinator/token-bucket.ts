/**
 * A token bucket on an injectable clock: `capacityTokens` at most, refilled continuously at
 * `refillPerSecond`. It may go into debt (charge() after the fact, e.g. for tokens a stream already
 * generated): the debt is paid back by the refill before anything new is allowed.
 */
import { InvalidArgumentError } from '../common/errors';

/** Time and timers for admission, injectable so tests run on a fake clock. */
export interface AdmissionClock {
  /** Monotonic milliseconds; only differences are meaningful. */
  nowMs(): number;
  setTimer(callback: () => void, delayMs: number): { cancel(): void };
}

export const systemAdmissionClock: AdmissionClock = {
  nowMs: () => performance.now(),
  setTimer: (callback, delayMs) => {
    const handle = setTimeout(callback, delayMs);
    return { cancel: () => clearTimeout(handle) };
  },
};

export class TokenBucket {
  private levelTokens: number;
  private lastMs: number;

  constructor(
    readonly capacityTokens: number,
    readonly refillPerSecond: number,
    private readonly clock: Pick<AdmissionClock, 'nowMs'>,
  ) {
    if (!(Number.isFinite(capacityTokens) && capacityTokens >= 1)) throw new InvalidArgumentError(`bucket capacity must be >= 1, got ${capacityTokens}`);
    if (!(Number.isFinite(refillPerSecond) && refillPerSecond > 0)) throw new InvalidArgumentError(`bucket refill must be > 0 per second, got ${refillPerSecond}`);
    this.levelTokens = capacityTokens;
    this.lastMs = clock.nowMs();
  }

  /** Tokens available now (negative while in debt). */
  level(): number {
    const nowMs = this.clock.nowMs();
    const elapsedMs = Math.max(0, nowMs - this.lastMs);
    this.levelTokens = Math.min(this.capacityTokens, this.levelTokens + (elapsedMs * this.refillPerSecond) / 1000);
    this.lastMs = nowMs;
    return this.levelTokens;
  }

  /** Milliseconds until `tokens` are available (0 if they are now), rounded up. */
  waitMs(tokens: number): number {
    const missing = tokens - this.level();
    return missing <= 0 ? 0 : Math.ceil((missing * 1000) / this.refillPerSecond);
  }

  /** Takes `tokens` if available now; false (and nothing taken) otherwise. */
  tryTake(tokens: number): boolean {
    if (this.level() < tokens) return false;
    this.levelTokens -= tokens;
    return true;
  }

  /** Takes `tokens` unconditionally, going into debt if needed. */
  charge(tokens: number): void {
    if (!(Number.isFinite(tokens) && tokens >= 0)) throw new InvalidArgumentError(`charge must be a non-negative number, got ${tokens}`);
    this.level();
    this.levelTokens -= tokens;
  }
}
