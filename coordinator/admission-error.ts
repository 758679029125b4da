/**
 * The refusal admission control answers with: RESOURCE_EXHAUSTED, naming the limit, with a hint of
 * when a retry can succeed. The hint goes to the client in the call's trailers (see
 * retryAfterMetadata) so a well-behaved client backs off instead of hammering.
 */
import { Metadata } from '@grpc/grpc-js';
import { ResourceExhaustedError } from '../common/errors';

export type AdmissionLimit = 'requests-per-second' | 'tokens-per-minute' | 'concurrent-streams' | 'queue-full' | 'queue-timeout';

/** Trailer keys: milliseconds for Bora clients, whole seconds in HTTP's Retry-After form for others. */
export const RETRY_AFTER_MS_METADATA_KEY = 'retry-after-ms';
export const RETRY_AFTER_METADATA_KEY = 'retry-after';

export class AdmissionRefusedError extends ResourceExhaustedError {
  constructor(
    readonly limit: AdmissionLimit,
    readonly retryAfterMs: number,
    message: string,
  ) {
    super(`${message}; retry after ${retryAfterMs} ms`);
  }
}

/** `retry-after-ms` and `retry-after` entries for the error's trailers (added to `into` if given). */
export function retryAfterMetadata(err: AdmissionRefusedError, into: Metadata = new Metadata()): Metadata {
  into.set(RETRY_AFTER_MS_METADATA_KEY, String(err.retryAfterMs));
  into.set(RETRY_AFTER_METADATA_KEY, String(Math.max(1, Math.ceil(err.retryAfterMs / 1000))));
  return into;
}

/** The retry-after hint in a received error's metadata, in ms, or undefined. */
export function retryAfterMsOf(metadata: Metadata | undefined): number | undefined {
  const [value] = metadata?.get(RETRY_AFTER_MS_METADATA_KEY) ?? [];
  const n = typeof value === 'string' ? Number(value) : NaN;
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}
