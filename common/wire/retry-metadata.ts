/**
 * How a Bora client marks a re-sent request (M13, retries): after a retryable error (UNAVAILABLE
 * from a standby, a stopping leader, or a leader that died mid-stream) the client sends the same
 * request again, to the next coordinator, with `bora-retry` in the call's metadata: `retry` when
 * none of its tokens had arrived, `resume` when some had (the client skips those; generation is
 * deterministic). The coordinator that receives it counts it in bora_client_retries_total, so a
 * coordinator failover shows in the metrics of the coordinator that took over.
 */
import { Metadata } from '@grpc/grpc-js';

export const RETRY_METADATA_KEY = 'bora-retry';
export const RETRY_KINDS = ['retry', 'resume'] as const;
export type RetryKind = (typeof RETRY_KINDS)[number];

/** The metadata of a re-sent call; an empty one for a first attempt. */
export function retryMetadata(kind: RetryKind | undefined): Metadata {
  const metadata = new Metadata();
  if (kind !== undefined) metadata.set(RETRY_METADATA_KEY, kind);
  return metadata;
}

/** The retry a call's metadata declares; undefined for a first attempt or an unknown value. */
export function retryKindOf(metadata: Metadata): RetryKind | undefined {
  const value = metadata.get(RETRY_METADATA_KEY)[0];
  return RETRY_KINDS.find((k) => k === value);
}
