/**
 * Carries a BoraError across a worker-thread boundary. Structured cloning keeps an Error's
 * message and stack but not its class or own fields (code, retryable, file...), so a task thread
 * sends this plain record instead, and the calling thread rebuilds the error with errorFromCode
 * (errors.ts), as a gRPC client does with a status (grpc-status.ts):
 * `assert.rejects(pool.sample(...), InvalidArgumentError)` holds as it would in-thread.
 */
import { asBoraError, type BoraError, CheckpointError, errorFromCode, type ErrorCode } from '../errors';

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

/** The error class the thread threw, rebuilt here (errors.ts, errorFromCode); its stack is the task thread's. */
export function fromThreadError(wire: ThreadError): BoraError {
  const err = errorFromCode(wire.code, wire.message, { retryable: wire.retryable, file: wire.file, tensor: wire.tensor });
  err.stack = wire.stack ?? err.stack;
  return err;
}
