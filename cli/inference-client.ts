/**
 * The Inference gRPC API from the command line: generation with events streamed back, and status.
 * Every call takes an optional CoordinatorAccess (client-credentials.ts): absent, the channel is
 * plaintext, as an --insecure cluster serves.
 */
import type * as grpc from '@grpc/grpc-js';
import { BoraError } from '../common/errors';
import type { GenerationEvent, GenerationRequest } from '../common/generation/request';
import { eventFromWire, requestToWire } from '../common/wire/generate-codec';
import { fromServiceError } from '../common/wire/grpc-status';
import type { ClusterStatus, GenerateEvent } from '../common/wire/messages';
import { boraProto, channelOptions, type InferenceClient } from '../common/wire/proto';
import { type CoordinatorAccess, clientChannelCredentials } from './client-credentials';

export function inferenceClient(address: string, access?: CoordinatorAccess): InferenceClient {
  const Inference = boraProto().Inference;
  return new Inference(address, clientChannelCredentials(access), channelOptions(10_000, 5_000));
}

export function generateOnce(
  address: string,
  request: GenerationRequest,
  onEvent: (e: GenerationEvent) => void,
  deadlineAtMs: number,
  access?: CoordinatorAccess,
): Promise<void> {
  const client = inferenceClient(address, access);
  return new Promise<void>((resolve, reject) => {
    const call = client.generate(requestToWire(request), { deadline: deadlineAtMs });
    call.on('data', (event: GenerateEvent) => onEvent(eventFromWire(event)));
    call.on('error', (err: grpc.ServiceError) => reject(fromServiceError(err)));
    call.on('end', () => resolve());
  }).finally(() => client.close());
}

const RETRY_PAUSE_MS = 250;

/**
 * Generates through the first coordinator of `addresses` (comma-separated) that serves. On a
 * retryable error (UNAVAILABLE: a standby, or a leader that died mid-stream) it retries on the
 * next one until the deadline. Generation is deterministic (greedy or seeded), so a retried request produces the
 * same tokens: the ones already delivered are skipped, and the caller sees each token once.
 */
export async function generateRemote(
  addresses: string,
  request: GenerationRequest,
  onEvent: (e: GenerationEvent) => void,
  deadlineMs: number,
  access?: CoordinatorAccess,
): Promise<void> {
  const list = addresses.split(',').map((a) => a.trim()).filter((a) => a !== '');
  const deadlineAtMs = Date.now() + deadlineMs;
  let delivered = 0;
  let resumes = 0;
  for (let attempt = 0; ; attempt++) {
    let seen = 0;
    try {
      await generateOnce(list[attempt % list.length], request, (event) => {
        if (event.type === 'token') {
          if (seen++ < delivered) return; // already delivered before the failover
          delivered++;
          onEvent(event);
        } else onEvent({ ...event, resumes: event.resumes + resumes });
      }, deadlineAtMs, access);
      return;
    } catch (err) {
      const retryable = err instanceof BoraError && err.retryable && Date.now() + RETRY_PAUSE_MS < deadlineAtMs;
      if (!retryable) throw err;
      if (delivered > 0) resumes++;
      await new Promise((r) => setTimeout(r, attempt < list.length ? 0 : RETRY_PAUSE_MS));
    }
  }
}

export function fetchStatus(address: string, timeoutMs = 2000, access?: CoordinatorAccess): Promise<ClusterStatus> {
  const client = inferenceClient(address, access);
  return new Promise<ClusterStatus>((resolve, reject) => {
    client.status({}, { deadline: Date.now() + timeoutMs }, (err, reply) => (err ? reject(fromServiceError(err)) : resolve(reply!)));
  }).finally(() => client.close());
}

/** Asks the coordinator to move a worker's assignments away; resolves with the new plan epoch. */
export function drainWorker(address: string, workerId: string, timeoutMs = 300_000, access?: CoordinatorAccess): Promise<number> {
  const client = inferenceClient(address, access);
  return new Promise<number>((resolve, reject) => {
    client.drain({ workerId }, { deadline: Date.now() + timeoutMs }, (err, reply) => (err ? reject(fromServiceError(err)) : resolve(reply!.planEpoch)));
  }).finally(() => client.close());
}
