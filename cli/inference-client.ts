/** The Inference gRPC API from the command line: generation with events streamed back, and status. */
import * as grpc from '@grpc/grpc-js';
import type { GenerationEvent, GenerationRequest } from '../common/generation/request';
import { eventFromWire, requestToWire } from '../common/wire/generate-codec';
import { fromServiceError } from '../common/wire/grpc-status';
import type { ClusterStatus, DrainReply, DrainRequest, GenerateEvent, GenerateRequest } from '../common/wire/messages';
import { boraProto, channelOptions } from '../common/wire/proto';

type InferenceClient = grpc.Client & {
  generate(request: GenerateRequest, options: grpc.CallOptions): grpc.ClientReadableStream<GenerateEvent>;
  status(request: object, options: grpc.CallOptions, callback: (err: grpc.ServiceError | null, reply?: ClusterStatus) => void): void;
  drain(request: DrainRequest, options: grpc.CallOptions, callback: (err: grpc.ServiceError | null, reply?: DrainReply) => void): void;
};

export function inferenceClient(address: string): InferenceClient {
  const Inference = boraProto().Inference;
  return new Inference(address, grpc.credentials.createInsecure(), channelOptions(10_000, 5_000)) as unknown as InferenceClient;
}

export function generateRemote(address: string, request: GenerationRequest, onEvent: (e: GenerationEvent) => void, deadlineMs: number): Promise<void> {
  const client = inferenceClient(address);
  return new Promise<void>((resolve, reject) => {
    const call = client.generate(requestToWire(request), { deadline: Date.now() + deadlineMs });
    call.on('data', (event: GenerateEvent) => onEvent(eventFromWire(event)));
    call.on('error', (err: grpc.ServiceError) => reject(fromServiceError(err)));
    call.on('end', () => resolve());
  }).finally(() => client.close());
}

export function fetchStatus(address: string, timeoutMs = 2000): Promise<ClusterStatus> {
  const client = inferenceClient(address);
  return new Promise<ClusterStatus>((resolve, reject) => {
    client.status({}, { deadline: Date.now() + timeoutMs }, (err, reply) => (err ? reject(fromServiceError(err)) : resolve(reply!)));
  }).finally(() => client.close());
}

/** Asks the coordinator to move a worker's assignments away; resolves with the new plan epoch. */
export function drainWorker(address: string, workerId: string, timeoutMs = 300_000): Promise<number> {
  const client = inferenceClient(address);
  return new Promise<number>((resolve, reject) => {
    client.drain({ workerId }, { deadline: Date.now() + timeoutMs }, (err, reply) => (err ? reject(fromServiceError(err)) : resolve(reply!.planEpoch)));
  }).finally(() => client.close());
}
