/**
 * Carries a BoraError across a worker-thread boundary. Structured cloning keeps an Error's
 * message and stack but not its class or own fields (code, retryable, file...), so a task thread
 * sends this plain record instead, and the pool rebuilds the same error class on the calling
 * thread: `assert.rejects(pool.sample(...), InvalidArgumentError)` holds as it would in-thread.
 */
import {
  asBoraError,
  BoraError,
  CheckpointError,
  type ErrorCode,
  FailedPreconditionError,
  InternalError,
  InvalidArgumentError,
  NotFoundError,
  ResourceExhaustedError,
  UnavailableError,
} from '../errors';

export interface ThreadError {
  readonly code: ErrorCode;
  /** The class name on the thread that threw, e.g. "InvalidArgumentError". */
  readonly name: string;
  readonly message: string;
  readonly retryable: boolean;
  readonly stack: string | undefined;
  /** CheckpointError only. */
  readonly file?: string;
  readonly tensor?: string;
}

export function toThreadError(err: unknown): ThreadError {
  const bora = asBoraError(err);
  const base = { code: bora.code, name: bora.name, message: bora.message, retryable: bora.retryable, stack: bora.stack };
  return bora instanceof CheckpointError ? { ...base, file: bora.file, tensor: bora.tensor } : base;
}

/** The error class the thread threw, rebuilt here; its stack is the task thread's. */
export function fromThreadError(wire: ThreadError): BoraError {
  const err = rebuild(wire);
  err.stack = wire.stack ?? err.stack;
  return err;
}

function rebuild(wire: ThreadError): BoraError {
  const options = { retryable: wire.retryable };
  switch (wire.code) {
    case 'INVALID_ARGUMENT':
      return new InvalidArgumentError(wire.message);
    case 'CHECKPOINT_INVALID': {
      // The constructor prefixes "file[: tensor t]: "; the message already carries it.
      const file = wire.file ?? '';
      const where = wire.tensor === undefined ? file : `${file}: tensor ${wire.tensor}`;
      const detail = wire.message.startsWith(`${where}: `) ? wire.message.slice(where.length + 2) : wire.message;
      return new CheckpointError(file, detail, { tensor: wire.tensor });
    }
    case 'NOT_FOUND':
      return new NotFoundError(wire.message);
    case 'RESOURCE_EXHAUSTED':
      return new ResourceExhaustedError(wire.message);
    case 'FAILED_PRECONDITION':
      return new FailedPreconditionError(wire.message, options);
    case 'UNAVAILABLE':
      return new UnavailableError(wire.message);
    case 'INTERNAL':
      return new InternalError(wire.message);
    default:
      return new BoraError(wire.code, wire.message, options);
  }
}
