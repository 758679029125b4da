/**
 * Whether a node's event loop is responsive, for its /livez probe. A probe answered at all shows
 * the loop runs now; this also remembers how long it stalled recently: perf_hooks'
 * monitorEventLoopDelay samples the loop's delay, and the largest delay of the current and the
 * previous window (each WINDOW_MS long) must stay under the limit. A worker whose loop blocks
 * for seconds misses its etcd lease renewals and is fenced, so the default limit (2 s) is below
 * the shortest lease TTL Bora uses; an orchestrator restarts a node that keeps failing this.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

export const DEFAULT_LOOP_STALL_LIMIT_MS = 2000;
const WINDOW_MS = 10_000;
const RESOLUTION_MS = 20;

export interface LivenessState {
  readonly live: boolean;
  /** The longest loop delay seen in the current and the previous window. */
  readonly maxDelayMs: number;
  readonly limitMs: number;
}

export class LoopLiveness {
  private readonly histogram: IntervalHistogram;
  private previousMaxMs = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(readonly limitMs = DEFAULT_LOOP_STALL_LIMIT_MS) {
    this.histogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  }

  start(): void {
    if (this.timer !== undefined) return;
    this.histogram.enable();
    this.timer = setInterval(() => {
      this.previousMaxMs = this.histogram.max / 1e6;
      this.histogram.reset();
    }, WINDOW_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.histogram.disable();
  }

  state(): LivenessState {
    // histogram.max is in nanoseconds; an empty histogram reports a huge minimum, not max, so 0 here.
    const currentMaxMs = this.histogram.count > 0 ? this.histogram.max / 1e6 : 0;
    const maxDelayMs = Math.max(currentMaxMs, this.previousMaxMs);
    return { live: maxDelayMs < this.limitMs, maxDelayMs, limitMs: this.limitMs };
  }
}
