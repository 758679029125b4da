/**
 * The refusal admission control answers with: RESOURCE_EXHAUSTED, naming the limit, with a hint of
 * when a retry can succeed. The hint goes to the client in the call's trailers (`retry-after-ms`
 * and `retry-after`, written by grpc-status.ts for every ResourceExhaustedError that has one), so
 * a well-behaved client backs off instead of hammering.
 */
import { ResourceExhaustedError } from '../common/errors';

export type AdmissionLimit = 'requests-per-second' | 'tokens-per-minute' | 'concurrent-streams' | 'queue-full' | 'queue-timeout';

export class AdmissionRefusedError extends ResourceExhaustedError {
  declare readonly retryAfterMs: number;

  constructor(
    readonly limit: AdmissionLimit,
    retryAfterMs: number,
    message: string,
  ) {
    super(`${message}; retry after ${retryAfterMs} ms`, { retryAfterMs });
  }
}
