/**
 * The one mapping between Bora's errors and gRPC statuses, both ways. A BoraError sent over gRPC
 * arrives as the class errorFromCode (errors.ts) rebuilds from its code, with the same message,
 * `retryable`, and a CheckpointError's file and tensor.
 */
import { status as Status, Metadata, type ServiceError } from '@grpc/grpc-js';
import { type BoraError, CheckpointError, ResourceExhaustedError, asBoraError, errorFromCode, isErrorCode, type ErrorCode, type ErrorDetails } from '../errors';

export const STATUS_BY_CODE: Readonly<Record<ErrorCode, Status>> = Object.freeze({
  INVALID_ARGUMENT: Status.INVALID_ARGUMENT,
  CHECKPOINT_INVALID: Status.FAILED_PRECONDITION,
  NOT_FOUND: Status.NOT_FOUND,
  RESOURCE_EXHAUSTED: Status.RESOURCE_EXHAUSTED,
  FAILED_PRECONDITION: Status.FAILED_PRECONDITION,
  UNAVAILABLE: Status.UNAVAILABLE,
  DEADLINE_EXCEEDED: Status.DEADLINE_EXCEEDED,
  CANCELLED: Status.CANCELLED,
  UNAUTHENTICATED: Status.UNAUTHENTICATED,
  PERMISSION_DENIED: Status.PERMISSION_DENIED,
  INTERNAL: Status.INTERNAL,
});

/** Metadata keys carrying what the status code cannot: the exact Bora code, `retryable`, and a
 * CheckpointError's file and tensor. The last two are binary (-bin) keys because a path or tensor
 * name need not be printable ASCII, which a plain metadata value must be. */
const CODE_KEY = 'bora-error-code';
const RETRYABLE_KEY = 'bora-error-retryable';
const FILE_KEY = 'bora-error-file-bin';
const TENSOR_KEY = 'bora-error-tensor-bin';
/** A ResourceExhaustedError's retry hint: milliseconds for Bora clients, and whole seconds in
 * HTTP's Retry-After form for any other client. */
export const RETRY_AFTER_MS_KEY = 'retry-after-ms';
export const RETRY_AFTER_KEY = 'retry-after';

export function toServiceError(err: unknown): Partial<ServiceError> {
  const bora = asBoraError(err);
  const metadata = new Metadata();
  metadata.set(CODE_KEY, bora.code);
  metadata.set(RETRYABLE_KEY, String(bora.retryable));
  if (bora instanceof CheckpointError) {
    metadata.set(FILE_KEY, Buffer.from(bora.file, 'utf8'));
    if (bora.tensor !== undefined) metadata.set(TENSOR_KEY, Buffer.from(bora.tensor, 'utf8'));
  }
  if (bora instanceof ResourceExhaustedError && bora.retryAfterMs !== undefined) {
    metadata.set(RETRY_AFTER_MS_KEY, String(Math.ceil(bora.retryAfterMs)));
    metadata.set(RETRY_AFTER_KEY, String(Math.max(1, Math.ceil(bora.retryAfterMs / 1000))));
  }
  return { code: STATUS_BY_CODE[bora.code], details: bora.message, message: bora.message, metadata };
}

const CODE_BY_STATUS: Partial<Record<Status, ErrorCode>> = {
  [Status.INVALID_ARGUMENT]: 'INVALID_ARGUMENT',
  [Status.NOT_FOUND]: 'NOT_FOUND',
  [Status.RESOURCE_EXHAUSTED]: 'RESOURCE_EXHAUSTED',
  [Status.FAILED_PRECONDITION]: 'FAILED_PRECONDITION',
  [Status.UNAVAILABLE]: 'UNAVAILABLE',
  [Status.DEADLINE_EXCEEDED]: 'DEADLINE_EXCEEDED',
  [Status.CANCELLED]: 'CANCELLED',
  [Status.UNAUTHENTICATED]: 'UNAUTHENTICATED',
  [Status.PERMISSION_DENIED]: 'PERMISSION_DENIED',
  [Status.INTERNAL]: 'INTERNAL',
};

/**
 * A status code and message back to a BoraError of the right class: of `boraCode` when the
 * sender named one, else of the status (a status from gRPC itself, or a frame's error, which
 * carries only the status code).
 */
export function fromStatus(code: Status, message: string, boraCode?: string, details: ErrorDetails = {}): BoraError {
  return errorFromCode(isErrorCode(boraCode) ? boraCode : (CODE_BY_STATUS[code] ?? 'UNAVAILABLE'), message, details);
}

/** A gRPC error back to the BoraError the other side sent, with its class, message and details. */
export function fromServiceError(err: ServiceError): BoraError {
  const text = (key: string): string | undefined => {
    const value = err.metadata?.get(key)[0];
    return typeof value === 'string' ? value : undefined;
  };
  const utf8 = (key: string): string | undefined => {
    const value = err.metadata?.get(key)[0];
    return Buffer.isBuffer(value) ? value.toString('utf8') : undefined;
  };
  const retryable = text(RETRYABLE_KEY);
  const retryAfterMs = Number(text(RETRY_AFTER_MS_KEY) ?? NaN);
  return fromStatus(err.code, err.details ?? err.message, text(CODE_KEY), {
    retryable: retryable === undefined ? undefined : retryable === 'true',
    file: utf8(FILE_KEY),
    tensor: utf8(TENSOR_KEY),
    retryAfterMs: Number.isSafeInteger(retryAfterMs) && retryAfterMs >= 0 ? retryAfterMs : undefined,
  });
}

/**
 * Ends a server stream with the error's status. (grpc-js sends a stream's status when the stream
 * emits 'error'; destroy() would drop the status and leave the client waiting.)
 */
export function failCall(call: { emit(event: 'error', err: unknown): boolean }, err: unknown): void {
  call.emit('error', toServiceError(err));
}
