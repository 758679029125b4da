/**
 * The request id: one string that names a client request in every log line about it, on every
 * node. A client may send its own (gRPC metadata or HTTP header `x-request-id`); otherwise the
 * coordinator makes one. The coordinator returns it (gRPC initial metadata, HTTP response header)
 * and hands it to the stages with the sequence's opening slice (SequenceSlice.request_id).
 */
import { randomUUID } from 'node:crypto';
import { InvalidArgumentError } from '../errors';

/** The gRPC metadata key and HTTP header. */
export const REQUEST_ID_HEADER = 'x-request-id';

/** Longest request id accepted: room for a UUID, a trace id, or a client's own scheme. */
export const MAX_REQUEST_ID_CHARS = 128;

/** Printable ASCII without spaces: safe in a header, a log line and a metric-free label. */
const REQUEST_ID = /^[\x21-\x7e]+$/;

export function newRequestId(): string {
  return randomUUID();
}

/** A client's id as given, or a clear INVALID_ARGUMENT. */
export function checkRequestId(raw: string): string {
  if (raw.length === 0 || raw.length > MAX_REQUEST_ID_CHARS || !REQUEST_ID.test(raw)) {
    throw new InvalidArgumentError(`${REQUEST_ID_HEADER} must be 1 to ${MAX_REQUEST_ID_CHARS} printable ASCII characters without spaces (got ${JSON.stringify(raw.slice(0, 40))}${raw.length > 40 ? '...' : ''})`);
  }
  return raw;
}

/** The client's id (checked) when it sent one, else a new one. */
export function requestIdOrNew(raw: string | undefined): string {
  return raw === undefined ? newRequestId() : checkRequestId(raw);
}
