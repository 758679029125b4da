/**
 * A sliding-window event rate: how many units (e.g. generated tokens) were counted in the last
 * `windowMs`, per second. Counts land in fixed time buckets of `bucketMs` on a ring, so memory is
 * constant whatever the rate, and an old bucket is dropped as a whole: the window spans between
 * windowMs - bucketMs and windowMs of history.
 *
 * The clock is injected (monotonic milliseconds) so that tests can step it exactly.
 */
import { InvalidArgumentError } from '../errors';

export type MonotonicClockMs = () => number;

export const DEFAULT_RATE_WINDOW_MS = 10_000;
export const DEFAULT_RATE_BUCKET_MS = 100;

export class RateWindow {
  readonly windowMs: number;
  readonly bucketMs: number;
  private readonly now: MonotonicClockMs;
  /** counts[slot] holds the units counted during bucket number bucketIds[slot]. */
  private readonly counts: Float64Array; // (windowMs / bucketMs,)
  private readonly bucketIds: Float64Array; // (windowMs / bucketMs,); absolute bucket numbers, NaN = empty

  constructor(options: { windowMs?: number; bucketMs?: number; now?: MonotonicClockMs } = {}) {
    this.windowMs = options.windowMs ?? DEFAULT_RATE_WINDOW_MS;
    this.bucketMs = options.bucketMs ?? DEFAULT_RATE_BUCKET_MS;
    this.now = options.now ?? (() => performance.now());
    const slots = this.windowMs / this.bucketMs;
    if (!(this.bucketMs > 0) || !Number.isInteger(slots) || slots < 1) {
      throw new InvalidArgumentError(
        `rate window ${this.windowMs} ms must be a positive whole number of ${this.bucketMs} ms buckets`,
      );
    }
    this.counts = new Float64Array(slots);
    this.bucketIds = new Float64Array(slots).fill(NaN);
  }

  add(units: number): void {
    if (!(units >= 0) || !Number.isFinite(units)) {
      throw new InvalidArgumentError(`a rate window counts finite units >= 0, got ${units}`);
    }
    const bucket = Math.floor(this.now() / this.bucketMs);
    const slot = ((bucket % this.counts.length) + this.counts.length) % this.counts.length;
    if (this.bucketIds[slot] !== bucket) {
      this.bucketIds[slot] = bucket;
      this.counts[slot] = 0;
    }
    this.counts[slot] += units;
  }

  /** Units counted in the last windowMs, divided by windowMs in seconds. */
  perSecond(): number {
    const current = Math.floor(this.now() / this.bucketMs);
    const oldest = current - this.counts.length + 1;
    let total = 0;
    for (let slot = 0; slot < this.counts.length; slot++) {
      const bucket = this.bucketIds[slot];
      if (bucket >= oldest && bucket <= current) total += this.counts[slot];
    }
    return total / (this.windowMs / 1000);
  }
}
