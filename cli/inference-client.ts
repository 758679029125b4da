/**
 * The Inference gRPC API from the command line: generation with events streamed back, and status.
 * Every call takes an optional CoordinatorAccess (client-credentials.ts): absent, the channel is
 * plaintext, as an --insecure cluster serves.
 */
import * as grpc from '@grpc/grpc-js';
import { BoraError, UnavailableError } from '../common/errors';
import type { GenerationEvent, GenerationRequest } from '../common/generation/request';
import { eventFromWire, requestToWire } from '../common/wire/generate-codec';
import { fromServiceError } from '../common/wire/grpc-status';
import { retryMetadata, type RetryKind } from '../common/wire/retry-metadata';
import type { ClusterStatus, GenerateEvent } from '../common/wire/messages';
import { boraProto, channelOptions, type InferenceClient } from '../common/wire/proto';
import { type CoordinatorAccess, clientChannelCredentials } from './client-credentials';

export function inferenceClient(address: string, access?: CoordinatorAccess): InferenceClient {
  const Inference = boraProto().Inference;
  return new Inference(address, clientChannelCredentials(access), channelOptions(10_000, 5_000));
}

/**
 * How long a coordinator gets to accept the connection. A call on a channel that cannot connect
 * would otherwise wait out its whole deadline (600 s for generate) without a word.
 */
export const CONNECT_TIMEOUT_MS = 5000;

/** A connection failure: no coordinator answered at the address. */
export class NotConnectedError extends UnavailableError {
  constructor(
    readonly address: string,
    why: string,
  ) {
    super(`no coordinator answers at ${address} (${why})`);
  }
}

/**
 * Resolves once the client's channel is connected. A refused or failed connection is a
 * NotConnectedError at once (so failing over to the next coordinator stays fast); a peer that
 * accepts but never answers is one after `timeoutMs`.
 */
export function connect(client: grpc.Client, address: string, timeoutMs = CONNECT_TIMEOUT_MS): Promise<void> {
  const channel = client.getChannel();
  const deadline = Date.now() + timeoutMs;
  return new Promise<void>((resolve, reject) => {
    const check = (): void => {
      const state = channel.getConnectivityState(true);
      if (state === grpc.connectivityState.READY) return resolve();
      if (state === grpc.connectivityState.TRANSIENT_FAILURE || state === grpc.connectivityState.SHUTDOWN) {
        return reject(new NotConnectedError(address, 'the connection failed'));
      }
      channel.watchConnectivityState(state, deadline, (err) => (err ? reject(new NotConnectedError(address, `no connection within ${timeoutMs / 1000} s`)) : check()));
    };
    check();
  });
}

export function generateOnce(
  address: string,
  request: GenerationRequest,
  onEvent: (e: GenerationEvent) => void,
  deadlineAtMs: number,
  access?: CoordinatorAccess,
  /** Set when this call re-sends a request (retry-metadata.ts). */
  retry?: RetryKind,
): Promise<void> {
  const wire = requestToWire(request);
  const client = inferenceClient(address, access);
  return connect(client, address, Math.max(1, Math.min(CONNECT_TIMEOUT_MS, deadlineAtMs - Date.now()))).then(() => new Promise<void>((resolve, reject) => {
    const call = client.generate(wire, retryMetadata(retry), { deadline: deadlineAtMs });
    call.on('data', (event: GenerateEvent) => onEvent(eventFromWire(event)));
    call.on('error', (err: grpc.ServiceError) => reject(fromServiceError(err)));
    call.on('end', () => resolve());
  })).finally(() => client.close());
}

const RETRY_PAUSE_MS = 250;

/**
 * Generates through the first coordinator of `addresses` (comma-separated) that serves. On a
 * retryable error (UNAVAILABLE: a standby, or a leader that died mid-stream) it retries on the
 * next one until the deadline. Generation is deterministic (greedy or seeded), so a retried request produces the
 * same tokens: the ones already delivered are skipped, and the caller sees each token once.
 * Each re-send says so in its metadata (retry-metadata.ts), for the coordinator's retry counter.
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
  // Connection failures in a row: once every address has failed to connect, none is up.
  let unreachable = 0;
  for (let attempt = 0; ; attempt++) {
    let seen = 0;
    const retry: RetryKind | undefined = attempt === 0 ? undefined : delivered > 0 ? 'resume' : 'retry';
    try {
      await generateOnce(list[attempt % list.length], request, (event) => {
        if (event.type === 'token') {
          if (seen++ < delivered) return; // already delivered before the failover
          delivered++;
          onEvent(event);
        } else onEvent({ ...event, resumes: event.resumes + resumes });
      }, deadlineAtMs, access, retry);
      return;
    } catch (err) {
      unreachable = err instanceof NotConnectedError ? unreachable + 1 : 0;
      if (unreachable >= list.length) throw list.length === 1 ? err : new NotConnectedError(list.join(', '), 'none of them connects');
      const retryable = err instanceof BoraError && err.retryable && Date.now() + RETRY_PAUSE_MS < deadlineAtMs;
      if (!retryable) throw err;
      if (delivered > 0) resumes++;
      await new Promise((r) => setTimeout(r, attempt < list.length ? 0 : RETRY_PAUSE_MS));
    }
  }
}

export function fetchStatus(address: string, timeoutMs = 2000, access?: CoordinatorAccess): Promise<ClusterStatus> {
  const client = inferenceClient(address, access);
  return connect(client, address, Math.min(CONNECT_TIMEOUT_MS, timeoutMs)).then(() => new Promise<ClusterStatus>((resolve, reject) => {
    client.status({}, { deadline: Date.now() + timeoutMs }, (err, reply) => (err ? reject(fromServiceError(err)) : resolve(reply!)));
  })).finally(() => client.close());
}

/** Asks the coordinator to move a worker's assignments away; resolves with the new plan epoch. */
export function drainWorker(address: string, workerId: string, timeoutMs = 300_000, access?: CoordinatorAccess): Promise<number> {
  const client = inferenceClient(address, access);
  return connect(client, address).then(() => new Promise<number>((resolve, reject) => {
    client.drain({ workerId }, { deadline: Date.now() + timeoutMs }, (err, reply) => (err ? reject(fromServiceError(err)) : resolve(reply!.planEpoch)));
  })).finally(() => client.close());
}
