/**
 * Every error Bora raises. One base class carries a machine-readable `code`, whether a retry can
 * help (`retryable`), and the underlying `cause`. Each class has its own `retryable` default,
 * which the thrower may override; callers decide whether to retry from `retryable`, never from
 * the code. An error that crosses a boundary (gRPC: grpc-status.ts; a worker thread:
 * pool/thread-errors.ts) travels as its code, message and ErrorDetails and is rebuilt on the
 * other side by errorFromCode, the one place that maps codes back to classes; this module stays
 * free of transport concerns.
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
  /** Overrides the class's default. */
  readonly retryable?: boolean;
}

/** Every ErrorCode, as a Record so that the compiler finds one missing. */
const ERROR_CODES: Readonly<Record<ErrorCode, true>> = {
  INVALID_ARGUMENT: true,
  CHECKPOINT_INVALID: true,
  NOT_FOUND: true,
  RESOURCE_EXHAUSTED: true,
  FAILED_PRECONDITION: true,
  UNAVAILABLE: true,
  DEADLINE_EXCEEDED: true,
  CANCELLED: true,
  INTERNAL: true,
  UNAUTHENTICATED: true,
  PERMISSION_DENIED: true,
};

/** Whether `code` (read from another process) is one of Bora's error codes. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERROR_CODES, code);
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
    super('INVALID_ARGUMENT', message, { ...options, retryable: options.retryable ?? false });
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
    super('CHECKPOINT_INVALID', `${checkpointWhere(file, options.tensor)}: ${message}`, { cause: options.cause, retryable: options.retryable ?? false });
    this.file = file;
    this.tensor = options.tensor;
  }
}

/** The "file[: tensor t]" a CheckpointError's message starts with. */
function checkpointWhere(file: string, tensor: string | undefined): string {
  return tensor === undefined ? file : `${file}: tensor ${tensor}`;
}

export class NotFoundError extends BoraError {
  constructor(message: string, options: BoraErrorOptions = {}) {
    super('NOT_FOUND', message, { ...options, retryable: options.retryable ?? false });
  }
}

/** A limit was hit. `retryAfterMs`, when set, says when a retry can succeed (rate and
 * admission limits); it travels to the client in the call's trailers (grpc-status.ts). */
export class ResourceExhaustedError extends BoraError {
  readonly retryAfterMs: number | undefined;

  constructor(message: string, options: BoraErrorOptions & { retryAfterMs?: number } = {}) {
    super('RESOURCE_EXHAUSTED', message, { ...options, retryable: options.retryable ?? false });
    this.retryAfterMs = options.retryAfterMs;
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
    super('UNAVAILABLE', message, { ...options, retryable: options.retryable ?? true });
  }
}

export class InternalError extends BoraError {
  constructor(message: string, options: BoraErrorOptions = {}) {
    super('INTERNAL', message, { ...options, retryable: options.retryable ?? false });
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

/** What an error carries across a boundary besides its code and message. */
export interface ErrorDetails {
  /** The thrower's `retryable`; absent: the class's default. */
  readonly retryable?: boolean;
  /** CheckpointError only. */
  readonly file?: string;
  readonly tensor?: string;
  /** ResourceExhaustedError only: when a retry can succeed. */
  readonly retryAfterMs?: number;
}

/**
 * The error that `code`, `message` and `details` describe, rebuilt where it arrives (grpc-status.ts,
 * pool/thread-errors.ts): the class of the code, the same message, and the thrower's `retryable`,
 * `file` and `tensor`. A class whose instances hold more than that arrives as the class of its
 * code: a StaleEpochError as a (retryable) FailedPreconditionError. A CHECKPOINT_INVALID without
 * its file cannot be a CheckpointError, whose file is always set; it arrives as a plain BoraError.
 */
export function errorFromCode(code: ErrorCode, message: string, details: ErrorDetails = {}): BoraError {
  const options = details.retryable === undefined ? {} : { retryable: details.retryable };
  switch (code) {
    case 'INVALID_ARGUMENT':
      return new InvalidArgumentError(message, options);
    case 'CHECKPOINT_INVALID': {
      if (details.file === undefined) return new BoraError(code, message, { retryable: false, ...options });
      // The constructor puts "file[: tensor t]: " in front; the message already starts with it.
      const where = `${checkpointWhere(details.file, details.tensor)}: `;
      const detail = message.startsWith(where) ? message.slice(where.length) : message;
      return new CheckpointError(details.file, detail, { ...options, tensor: details.tensor });
    }
    case 'NOT_FOUND':
      return new NotFoundError(message, options);
    case 'RESOURCE_EXHAUSTED':
      return new ResourceExhaustedError(message, { ...options, retryAfterMs: details.retryAfterMs });
    case 'FAILED_PRECONDITION':
      return new FailedPreconditionError(message, options);
    case 'UNAVAILABLE':
      return new UnavailableError(message, options);
    case 'INTERNAL':
      return new InternalError(message, options);
    case 'UNAUTHENTICATED':
      return new UnauthenticatedError(message, options);
    case 'PERMISSION_DENIED':
      return new PermissionDeniedError(message, options);
    default:
      return new BoraError(code, message, options);
  }
}
