/** Binds the Worker gRPC service to an address (port 0 picks a free port). */
import * as grpc from '@grpc/grpc-js';
import { channelOptions } from '../common/wire/proto';
import { addWorkerService, type HandoverHandlers, type WorkerState } from './worker-service';

export interface BoundServer {
  readonly server: grpc.Server;
  readonly port: number;
  /** host:port that peers dial. */
  readonly address: string;
  close(): Promise<void>;
}

export async function bindServer(server: grpc.Server, host: string, port: number): Promise<BoundServer> {
  const bound = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (err, actual) => (err ? reject(err) : resolve(actual)));
  });
  return {
    server,
    port: bound,
    address: `${host}:${bound}`,
    close: () =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 1000);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
  };
}

export function startWorkerServer(
  state: WorkerState,
  host: string,
  port: number,
  keepalive: { timeMs: number; timeoutMs: number },
  handover?: Partial<HandoverHandlers>,
): Promise<BoundServer> {
  const server = new grpc.Server({
    ...channelOptions(keepalive.timeMs, keepalive.timeoutMs),
    // Accept the coordinator's and peers' keepalive pings at the cadence they send them.
    'grpc.http2.min_ping_interval_without_data_ms': Math.min(keepalive.timeMs, 1000),
  });
  addWorkerService(server, state, handover);
  return bindServer(server, host, port);
}
