/** One-off status calls to a worker: liveness probes after a failure, and the Status RPC's view. */
import type * as grpc from '@grpc/grpc-js';
import type { WorkerStatusReply } from '../common/wire/messages';
import { withWorkerClient } from '../common/wire/proto';

type WorkerClient = grpc.Client & {
  status(request: object, options: grpc.CallOptions, callback: (err: grpc.ServiceError | null, reply?: WorkerStatusReply) => void): void;
};

/** A worker's status, or undefined when it does not answer within `timeoutMs`. */
export function workerStatus(address: string, timeoutMs: number): Promise<WorkerStatusReply | undefined> {
  return withWorkerClient<WorkerClient, WorkerStatusReply | undefined>(
    address,
    (client) =>
      new Promise((resolve) => {
        client.status({}, { deadline: Date.now() + timeoutMs }, (err, reply) => resolve(err === null ? reply : undefined));
      }),
  );
}
