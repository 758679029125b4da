/** Binds the Worker gRPC service (and grpc.health.v1) to an address (port 0 picks a free port), mutual TLS when `access` has it. */
import * as grpc from '@grpc/grpc-js';
import { bindServer, type BoundServer } from '../common/wire/bind-server';
import { nodePortCredentials } from '../common/security/node-security';
import { MAX_NODE_MESSAGE_BYTES, channelOptions } from '../common/wire/proto';
import { OPEN_WORKER_ACCESS, type WorkerAccess } from './worker-access';
export type { BoundServer } from '../common/wire/bind-server';
import { addWorkerService, type HandoverHandlers, type WorkerState } from './worker-service';
import type { HealthService } from '../common/wire/health-service';

export function startWorkerServer(
  state: WorkerState,
  host: string,
  port: number,
  keepalive: { timeMs: number; timeoutMs: number },
  handover?: Partial<HandoverHandlers>,
  /** The node's transport security and its Worker service policy; plaintext and unchecked when absent. */
  access: WorkerAccess = OPEN_WORKER_ACCESS,
  /** grpc.health.v1 on the same port, when given. */
  health?: HealthService,
): Promise<BoundServer> {
  const server = new grpc.Server({
    // Only nodes call here, and no message between nodes is larger (proto.ts).
    ...channelOptions(keepalive.timeMs, keepalive.timeoutMs, MAX_NODE_MESSAGE_BYTES),
    // Accept the coordinator's and peers' keepalive pings at the cadence they send them.
    'grpc.http2.min_ping_interval_without_data_ms': Math.min(keepalive.timeMs, 1000),
  });
  addWorkerService(server, state, handover, access);
  health?.addTo(server);
  return bindServer(server, host, port, nodePortCredentials(access.security));
}
