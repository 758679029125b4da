/**
 * Whether a worker is alive, judged from status probes in a way that a lossy link does not fool.
 *
 * One probe with a short deadline (the old rule: 500 ms) calls a live worker dead whenever one
 * packet of the exchange waits for a TCP retransmission: an RTO is at least 200 ms and doubles,
 * a new connection's lost SYN waits a whole second, and chaos S6 (10 % loss) resharded 13-40
 * times on it. The rule here:
 *
 *   - a verdict takes a window of max(minWindowMs, RTT_FACTOR x the worker's slowest recent
 *     answer) (a slow link, e.g. 100 ms each way, widens its own window);
 *   - within it a probe goes out every PROBE_INTERVAL_MS, each allowed until the window ends;
 *   - the worker is alive as soon as any probe answers, dead only when none did, or at once
 *     when its host refuses the connection (nothing listens there: loss cannot cause that).
 *
 * So a blackholed or paused worker is called dead after the window (800 ms by default), a killed
 * one as soon as a probe finds its port closed, and a live
 * one on a lossy link is called dead only if every one of several probes, each with several
 * retransmission timeouts to spare, lost its request or its answer.
 * The caller's `ask` should ride a connection kept open between verdicts (no handshake to lose);
 * a probe that fails at once (a connection that just broke) is followed by the next one.
 */

/** A verdict waits at least this long for an answer before calling a worker dead. */
export const MIN_VERDICT_WINDOW_MS = 800;
/** A new probe goes out this often while no answer has come. */
export const PROBE_INTERVAL_MS = 200;
/** The window is at least this many times the worker's slowest recent answer. */
export const RTT_FACTOR = 4;
/** Answers remembered per worker for its round trip. */
const RTT_HISTORY = 8;

/** Timers and time, injectable (test/support/fake-clock.ts). */
export interface ProbeClock {
  nowMs(): number;
  setTimer(callback: () => void, delayMs: number): { cancel(): void };
}

export const REAL_PROBE_CLOCK: ProbeClock = {
  nowMs: () => performance.now(),
  setTimer: (callback, delayMs) => {
    const timer = setTimeout(callback, delayMs);
    timer.unref();
    return { cancel: () => clearTimeout(timer) };
  },
};

/** What one status probe found: an answer, a refused connection, or nothing within its deadline. */
export type ProbeOutcome = 'answered' | 'refused' | 'silent';
/** One status probe of `worker` with a deadline of `timeoutMs` (never rejects). */
export type AskStatus = (worker: string, timeoutMs: number) => Promise<ProbeOutcome>;

export class LivenessProbe {
  /** Recent round trips of answered probes, per worker. */
  private readonly roundTrips = new Map<string, number[]>();

  constructor(
    private readonly ask: AskStatus,
    private readonly clock: ProbeClock = REAL_PROBE_CLOCK,
  ) {}

  /** The verdict window for `worker` now. */
  windowMs(worker: string, minWindowMs = MIN_VERDICT_WINDOW_MS): number {
    const trips = this.roundTrips.get(worker) ?? [];
    return Math.max(minWindowMs, RTT_FACTOR * Math.max(0, ...trips));
  }

  /** Forgets a worker's round trips (it left). */
  forget(worker: string): void {
    this.roundTrips.delete(worker);
  }

  /** Resolves true as soon as a probe of `worker` answers; false when none did within its window, or one was refused. */
  alive(worker: string, minWindowMs = MIN_VERDICT_WINDOW_MS): Promise<boolean> {
    const windowMs = this.windowMs(worker, minWindowMs);
    const startMs = this.clock.nowMs();
    return new Promise<boolean>((resolve) => {
      let settled = false;
      let next: { cancel(): void } | undefined;
      const settle = (alive: boolean): void => {
        if (settled) return;
        settled = true;
        next?.cancel();
        end.cancel();
        resolve(alive);
      };
      const end = this.clock.setTimer(() => settle(false), windowMs);
      const send = (): void => {
        if (settled) return;
        const sentMs = this.clock.nowMs();
        const remainingMs = startMs + windowMs - sentMs;
        if (remainingMs <= 0) return;
        void this.ask(worker, remainingMs).then((outcome) => {
          if (outcome === 'refused') settle(false);
          if (outcome !== 'answered' || settled) return;
          this.remember(worker, this.clock.nowMs() - sentMs);
          settle(true);
        });
        if (remainingMs > PROBE_INTERVAL_MS) next = this.clock.setTimer(send, PROBE_INTERVAL_MS);
      };
      send();
    });
  }

  private remember(worker: string, roundTripMs: number): void {
    const trips = this.roundTrips.get(worker) ?? [];
    trips.push(roundTripMs);
    if (trips.length > RTT_HISTORY) trips.shift();
    this.roundTrips.set(worker, trips);
  }
}
