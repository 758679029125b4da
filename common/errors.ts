/**
 * Every error Bora raises. One base class carries a machine-readable `code`, whether a retry can
 * help (`retryable`), and the underlying `cause`. Mapping to and from gRPC status codes lives in
 * grpc-status.ts so that this module stays free of transport concerns.
 */

export type ErrorCode =
  | 'INVALID_ARGUMENT' // the request itself is wrong: fixing it is the caller's job
  | 'CHECKPOINT_INVALID' // a model directory is malformed (names the file and tensor)
  | 'NOT_FOUND' // an unknown model, sequence or worker
  | 'RESOURCE_EXHAUSTED' // a limit (tokens, memory, queue) was hit
  | 'FAILED_PRECONDITION' // the system is not in a state to do this (e.g. stale plan epoch)
  | 'UNAVAILABLE' // transient: a node or the cluster is not reachable right now
  | 'DEADLINE_EXCEEDED'
  | 'CANCELLED'
  | 'UNAUTHENTICATED' // the caller did not prove who it is (no or bad credentials)
  | 'PERMISSION_DENIED' // the caller is known, but its role may not do this
  | 'INTERNAL'; // a bug: an invariant did not hold

export interface BoraErrorOptions {
  readonly cause?: unknown;
  readonly retryable?: boolean;
}

export class BoraError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;

  constructor(code: ErrorCode, message: string, options: BoraErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retryable = options.retryable ?? (code === 'UNAVAILABLE');
  }
}

/** A request that can never succeed as sent. */
export class InvalidArgumentError extends BoraError {
  constructor(message: string, options: BoraErrorOptions = {}) {
    super('INVALID_ARGUMENT', message, { ...options, retryable: false });
  }
}

/**
 * A checkpoint directory that cannot be used. The message always names the file and, where one
 * is involved, the tensor, so an operator can find the fault without a debugger.
 */
export class CheckpointError extends BoraError {
  readonly file: string;
  readonly tensor: string | undefined;

  constructor(file: string, message: string, options: BoraErrorOptions & { tensor?: string } = {}) {
    const where = options.tensor === undefined ? file : `${file}: tensor ${options.tensor}`;
    super('CHECKPOINT_INVALID', `${where}: ${message}`, { ...options, retryable: false });
    this.file = file;
    this.tensor = options.tensor;
  }
}

export class NotFoundError extends BoraError {
  constructor(message: string, options: BoraErrorOptions = {}) {
    super('NOT_FOUND', message, { ...options, retryable: false });
  }
}

export class ResourceExhaustedError extends BoraError {
  constructor(message: string, options: BoraErrorOptions = {}) {
    super('RESOURCE_EXHAUSTED', message, { ...options, retryable: false });
  }
}

/** The caller presented no credentials, or ones that do not check out (no client certificate,
 * one from another CA, an unknown or malformed API key). Retrying with the same ones cannot help. */
export class UnauthenticatedError extends BoraError {
  constructor(message: string, options: BoraErrorOptions = {}) {
    super('UNAUTHENTICATED', message, { ...options, retryable: false });
  }
}

/** The caller is authenticated, but its role may not make this call. */
export class PermissionDeniedError extends BoraError {
  constructor(message: string, options: BoraErrorOptions = {}) {
    super('PERMISSION_DENIED', message, { ...options, retryable: false });
  }
}

/** The plan epoch a message carries is not the one this node serves. */
export class StaleEpochError extends BoraError {
  readonly gotEpoch: number;
  readonly servingEpoch: number;

  constructor(gotEpoch: number, servingEpoch: number) {
    super('FAILED_PRECONDITION', `frame carries plan epoch ${gotEpoch}, this node serves epoch ${servingEpoch}`, {
      retryable: true,
    });
    this.gotEpoch = gotEpoch;
    this.servingEpoch = servingEpoch;
  }
}

export class UnavailableError extends BoraError {
  constructor(message: string, options: BoraErrorOptions = {}) {
    super('UNAVAILABLE', message, { ...options, retryable: true });
  }
}

export class InternalError extends BoraError {
  constructor(message: string, options: BoraErrorOptions = {}) {
    super('INTERNAL', message, { ...options, retryable: false });
  }
}

/** Wraps anything thrown into a BoraError, keeping the original as the cause. */
export function asBoraError(err: unknown): BoraError {
  if (err instanceof BoraError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new InternalError(message, { cause: err });
}

/** The system is not in a state to do this now (e.g. a sequence position out of order). */
export class FailedPreconditionError extends BoraError {
  constructor(message: string, options: BoraErrorOptions = {}) {
    super('FAILED_PRECONDITION', message, { ...options, retryable: options.retryable ?? false });
  }
}
