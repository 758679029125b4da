/**
 * The Status RPC's view of the cluster: the plan in force, each member's layers and experts in it,
 * and what each worker says of itself (sequences, KV-cache bytes, the epoch it serves).
 */
import type { MemberInfo } from '../common/cluster/member';
import type { Plan } from '../common/cluster/plan';
import type { WorkerId } from '../common/ids';
import { INSECURE, type NodeSecurity } from '../common/security/node-security';
import type { ClusterStatus } from '../common/wire/messages';
import { workerStatus } from './worker-probe';

/** How long the Status RPC waits for each worker's own status. */
export const STATUS_TIMEOUT_MS = 1000;

export interface ClusterView {
  readonly model: string;
  /** The latest published plan. */
  readonly plan: Plan | undefined;
  /** Every worker of `plan` has loaded it. */
  readonly planLoaded: boolean;
  readonly members: ReadonlyMap<WorkerId, MemberInfo>;
  readonly activeSequences: number;
  readonly waitingRequests: number;
  /** This coordinator leads and a pipeline serves. */
  readonly serving: boolean;
  /** No re-plan is scheduled or running. */
  readonly replanIdle: boolean;
  /** How the workers are dialed for their own status; plaintext when absent. */
  readonly security?: NodeSecurity;
}

export async function clusterStatus(view: ClusterView): Promise<ClusterStatus> {
  const { plan } = view;
  let anyLoading = false;
  const workers = await Promise.all(
    [...view.members.values()].map(async (m) => {
      const reply = await workerStatus(m.address, STATUS_TIMEOUT_MS, view.security ?? INSECURE);
      if (reply?.loading === true) anyLoading = true;
      const stage = plan?.stages.find((s) => s.workers[0] === m.id);
      const experts = (plan?.experts ?? []).filter((e) => e.workers.includes(m.id));
      const byLayer = new Map<number, number[]>();
      for (const e of experts) byLayer.set(e.layer, [...(byLayer.get(e.layer) ?? []), e.expert]);
      return {
        id: m.id,
        address: m.address,
        layerStart: stage?.range.start ?? 0,
        layerEnd: stage?.range.end ?? 0,
        sequences: reply?.sequences ?? 0,
        kvCacheBytes: reply?.kvCacheBytes ?? 0,
        ready: reply !== undefined && plan !== undefined && reply.planEpoch === plan.epoch && view.planLoaded,
        experts: [...byLayer.entries()].map(([layer, list]) => ({ layer, experts: list })),
      };
    }),
  );
  workers.sort((a, b) => a.layerStart - b.layerStart || a.id.localeCompare(b.id));
  return {
    planEpoch: plan?.epoch ?? 0,
    model: view.model,
    workers,
    activeSequences: view.activeSequences,
    waitingRequests: view.waitingRequests,
    serving: view.serving,
    settled: view.replanIdle && plan !== undefined && view.planLoaded && !anyLoading,
  };
}
