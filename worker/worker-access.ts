/**
 * Who may call what on the Worker service (with TLS; --insecure checks nothing):
 *
 *   Forward                       the coordinator (stage 0's input), or a worker of the current
 *                                 plan (the previous stage)
 *   Results, Release, CommitPlan  the coordinator: results are every user's logits, and a
 *                                 release or commit from anyone else would disrupt sequences
 *   Status                        the coordinator (probes, cluster status) or an admin
 *   RunExperts, FetchKv           a worker of the current plan (expert dispatch; a hand-over's
 *                                 cache copy): KV caches and activations are users' data
 *
 * "Current plan" is every worker of the plan served and of the plan being applied (a hand-over
 * has both at once), so that the new plan's workers can copy caches from the old one's.
 */
import type { WorkerId } from '../common/ids';
import type { AuditLog } from '../common/security/audit';
import type { Identity, NodeRole } from '../common/security/identity';
import { type AuthCall, NodeAccess, workerIn } from '../common/security/node-access';
import { INSECURE, type NodeSecurity } from '../common/security/node-security';

export type WorkerMethod = 'Forward' | 'Results' | 'Release' | 'Status' | 'RunExperts' | 'CommitPlan' | 'FetchKv';

interface Rule {
  readonly roles: readonly NodeRole[];
  /** A worker caller must be in the current plan. */
  readonly planWorker: boolean;
}

export const WORKER_METHOD_RULES: Readonly<Record<WorkerMethod, Rule>> = {
  Forward: { roles: ['coordinator', 'worker'], planWorker: true },
  Results: { roles: ['coordinator'], planWorker: false },
  Release: { roles: ['coordinator'], planWorker: false },
  CommitPlan: { roles: ['coordinator'], planWorker: false },
  Status: { roles: ['coordinator', 'admin'], planWorker: false },
  RunExperts: { roles: ['worker'], planWorker: true },
  FetchKv: { roles: ['worker'], planWorker: true },
};

export interface WorkerAccessOptions {
  /** Workers of the current plan (see above); empty before the first plan. */
  readonly planWorkers: () => ReadonlySet<WorkerId>;
  readonly audit?: AuditLog;
  readonly onRefused?: (method: WorkerMethod, code: 'UNAUTHENTICATED' | 'PERMISSION_DENIED') => void;
}

export class WorkerAccess {
  private readonly access: NodeAccess;

  constructor(
    readonly security: NodeSecurity,
    private readonly options: WorkerAccessOptions,
  ) {
    this.access = new NodeAccess(security, { audit: options.audit, onRefused: (what, code) => options.onRefused?.(what as WorkerMethod, code) });
  }

  get enforced(): boolean {
    return this.access.enforced;
  }

  /** Throws UnauthenticatedError / PermissionDeniedError (audited) unless the caller may make `method`. */
  check(call: AuthCall, method: WorkerMethod): Identity | undefined {
    const rule = WORKER_METHOD_RULES[method];
    return this.access.require(call, rule.roles, method, rule.planWorker ? workerIn(this.options.planWorkers(), method) : undefined);
  }

  /** Whether `who` (checked on a stream's first message) is still allowed, e.g. in a newer plan. */
  stillAllowed(who: Identity | undefined, method: WorkerMethod): boolean {
    if (who === undefined || who.role !== 'worker' || !WORKER_METHOD_RULES[method].planWorker) return true;
    return (this.options.planWorkers() as ReadonlySet<string>).has(who.id);
  }
}

/** No checks: plaintext development mode, and tests of the service itself. */
export const OPEN_WORKER_ACCESS = new WorkerAccess(INSECURE, { planWorkers: () => new Set() });
