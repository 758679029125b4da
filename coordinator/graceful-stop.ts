/**
 * A coordinator's graceful stop (SIGTERM): the wait for the requests it runs to finish. While it
 * waits, the coordinator refuses new requests with UNAVAILABLE (retryable), so clients that know
 * another coordinator go there; once nothing runs, or `timeoutMs` has passed, the caller resigns
 * leadership (so that a standby leads at once, not a lease TTL later) and hands whatever still
 * runs to the next leader the way a failover does: UNAVAILABLE, and the client re-sends the
 * request and skips the tokens it already has (cli/inference-client.ts generateRemote). The gRPC
 * server then closes gracefully, so that every call's last events and status reach its client.
 */

/** How often the count of running requests is looked at while draining. */
export const DRAIN_POLL_MS = 50;

/**
 * How long a stopping coordinator's gRPC calls get at least, after their requests ended, for
 * their last events and status to reach a client that reads slowly (cut, a call would end
 * without a status: an INTERNAL error that the client does not retry).
 */
export const STREAM_FLUSH_MS = 3000;

/** How long a stopping coordinator waits for its requests by default (under Kubernetes' 30 s grace). */
export const DEFAULT_COORDINATOR_DRAIN_TIMEOUT_MS = 20_000;

export interface DrainOptions {
  /** Requests accepted and not yet finished (queued or generating). */
  readonly inFlight: () => number;
  readonly timeoutMs: number;
  readonly pollMs?: number;
}

/** Resolves with the number of requests still running: 0 once all finished, more at the timeout. */
export async function waitForRequests(o: DrainOptions): Promise<number> {
  const deadlineMs = performance.now() + o.timeoutMs;
  for (;;) {
    const left = o.inFlight();
    if (left === 0 || performance.now() >= deadlineMs) return left;
    await new Promise((r) => setTimeout(r, Math.min(o.pollMs ?? DRAIN_POLL_MS, Math.max(1, deadlineMs - performance.now()))));
  }
}
