/**
 * Whether a node is ready to serve, for its /readyz probe and its grpc.health.v1 status. The node
 * supplies the condition (a worker: it holds its lease and serves the latest plan; a coordinator:
 * it leads with a serving plan, or stands by behind a leader that has one). The probe re-checks
 * on a timer so that the gRPC health service can push changes to its watchers, and on demand for
 * each /readyz request, so a probe never answers from a stale check.
 */
import { asBoraError } from '../errors';

export interface ReadyState {
  readonly ready: boolean;
  /** What the node is doing, for the probe's body and the health log line. */
  readonly detail: string;
}

export type ReadinessCheck = () => ReadyState | Promise<ReadyState>;

/** Checks at this interval between requests. */
export const DEFAULT_READINESS_INTERVAL_MS = 1000;

export class ReadinessProbe {
  private state: ReadyState = { ready: false, detail: 'starting' };
  private readonly listeners: ((state: ReadyState) => void)[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly check: ReadinessCheck,
    private readonly intervalMs = DEFAULT_READINESS_INTERVAL_MS,
  ) {}

  /** Checks now and then every interval; the timer does not keep the process alive. */
  start(): void {
    if (this.timer !== undefined) return;
    void this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  current(): ReadyState {
    return this.state;
  }

  /** Runs the check; a check that throws counts as not ready, with its message. */
  async refresh(): Promise<ReadyState> {
    let next: ReadyState;
    try {
      next = await this.check();
    } catch (err) {
      next = { ready: false, detail: `the readiness check failed: ${asBoraError(err).message}` };
    }
    const changed = next.ready !== this.state.ready;
    this.state = next;
    if (changed) for (const listener of this.listeners) listener(next);
    return next;
  }

  /** Called with each change of `ready` (not of the detail alone). */
  onChange(listener: (state: ReadyState) => void): void {
    this.listeners.push(listener);
  }
}
