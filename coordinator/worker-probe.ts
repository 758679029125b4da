/** One-off status calls to a worker: the Status RPC's view of the cluster (the stall watchdog probes over probe-channels.ts). */
import type { WorkerStatusReply } from '../common/wire/messages';
import type { NodeSecurity } from '../common/security/node-security';
import { withWorkerClient } from '../common/wire/proto';

/** A worker's status, or undefined when it does not answer within `timeoutMs`. */
export function workerStatus(address: string, timeoutMs: number, security: NodeSecurity): Promise<WorkerStatusReply | undefined> {
  return withWorkerClient<WorkerStatusReply | undefined>(
    address,
    security,
    (client) =>
      new Promise((resolve) => {
        client.status({}, { deadline: Date.now() + timeoutMs }, (err, reply) => resolve(err === null ? reply : undefined));
      }),
  );
}
