/**
 * The one mapping between Bora's errors and gRPC status codes, both ways. A BoraError sent over
 * gRPC arrives as the same class with the same message on the other side.
 */
import { status as Status, Metadata, type ServiceError } from '@grpc/grpc-js';
import {
  BoraError,
  CheckpointError,
  FailedPreconditionError,
  InternalError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
  UnauthenticatedError,
  UnavailableError,
  asBoraError,
  type ErrorCode,
} from '../errors';

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

/** Metadata key carrying the Bora error code, so a status maps back to the exact class. */
const CODE_KEY = 'bora-error-code';

export function toServiceError(err: unknown): Partial<ServiceError> {
  const bora = asBoraError(err);
  const metadata = new Metadata();
  metadata.set(CODE_KEY, bora.code);
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

/** A gRPC error (or a status code and message) back to a BoraError of the right class. */
export function fromStatus(code: Status, message: string, boraCode?: string): BoraError {
  const resolved = (boraCode as ErrorCode | undefined) ?? CODE_BY_STATUS[code] ?? 'UNAVAILABLE';
  switch (resolved) {
    case 'INVALID_ARGUMENT':
      return new InvalidArgumentError(message);
    case 'CHECKPOINT_INVALID':
      return new CheckpointError('remote', message);
    case 'NOT_FOUND':
      return new NotFoundError(message);
    case 'RESOURCE_EXHAUSTED':
      return new ResourceExhaustedError(message);
    case 'FAILED_PRECONDITION':
      return new FailedPreconditionError(message);
    case 'INTERNAL':
      return new InternalError(message);
    case 'UNAVAILABLE':
      return new UnavailableError(message);
    case 'UNAUTHENTICATED':
      return new UnauthenticatedError(message);
    case 'PERMISSION_DENIED':
      return new PermissionDeniedError(message);
    default:
      return new BoraError(resolved, message);
  }
}

export function fromServiceError(err: ServiceError): BoraError {
  const boraCode = err.metadata?.get(CODE_KEY)[0];
  return fromStatus(err.code, err.details ?? err.message, typeof boraCode === 'string' ? boraCode : undefined);
}

/**
 * Ends a server stream with the error's status. (grpc-js sends a stream's status when the stream
 * emits 'error'; destroy() would drop the status and leave the client waiting.)
 */
export function failCall(call: { emit(event: 'error', err: unknown): boolean }, err: unknown): void {
  call.emit('error', toServiceError(err));
}
