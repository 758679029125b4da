/**
 * A worker's graceful stop: before it leaves, it asks the leading coordinator to drain it (the
 * Drain call, which a worker may make for itself alone, with its own certificate: client-gate.ts).
 * The coordinator plans the cluster without it as a planned change, so the stages that take its
 * layers copy its KV caches (hand-over) and no sequence is replayed; Drain answers once that plan
 * serves, and only then does the worker stop. Without a leader, or when the coordinator cannot
 * plan without it (it was the last worker), the worker says why and stops anyway: a stop is
 * never refused, only made graceful where it can be.
 */
import type { Etcd3 } from 'etcd3';
import { asBoraError } from '../common/errors';
import type { EtcdKeys } from '../common/cluster/etcd-keys';
import type { WorkerId } from '../common/ids';
import { dialNode, type NodeSecurity } from '../common/security/node-security';
import { boraProto } from '../common/wire/proto';
import { fromServiceError } from '../common/wire/grpc-status';

/** etcd's smallest lease TTL; the election API asks for one, reading the leader takes none. */
const ELECTION_TTL_S = 2;

export interface SelfDrainOptions {
  readonly id: WorkerId;
  readonly etcd: Etcd3;
  readonly keys: EtcdKeys;
  readonly security: NodeSecurity;
  /** How long to wait for the plan without this worker to serve. */
  readonly timeoutMs: number;
  readonly log: (message: string) => void;
}

export type SelfDrainResult = { readonly drained: true; readonly planEpoch: number } | { readonly drained: false; readonly reason: string };

export async function drainSelf(o: SelfDrainOptions): Promise<SelfDrainResult> {
  let leader: string | undefined;
  try {
    leader = await o.etcd.election(o.keys.electionCoordinator(), ELECTION_TTL_S).leader();
  } catch (err) {
    return { drained: false, reason: `cannot read the leader from etcd: ${asBoraError(err).message}` };
  }
  if (leader === undefined) return { drained: false, reason: 'no coordinator leads' };
  o.log(`draining: asking the coordinator at ${leader} to plan without ${o.id}`);
  const dial = dialNode(o.security, leader);
  const client = new (boraProto().Inference)(leader, dial.credentials, dial.options);
  try {
    const reply = await new Promise<{ planEpoch: number }>((resolve, reject) =>
      client.drain({ workerId: o.id }, { deadline: Date.now() + o.timeoutMs }, (err, r) => (err ? reject(fromServiceError(err)) : resolve(r!))),
    );
    return { drained: true, planEpoch: reply.planEpoch };
  } catch (err) {
    return { drained: false, reason: asBoraError(err).message };
  } finally {
    client.close();
  }
}
