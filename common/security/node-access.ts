/**
 * The check a node's handlers make before serving another node: the caller's certificate role
 * (and whatever rule the service adds, e.g. "in the current plan"), with every refusal written to
 * the audit log and reported to the caller's hook (a metric). Without TLS (--insecure) there are
 * no certificates to check and every call passes: that mode is for development only.
 */
import { PermissionDeniedError, asBoraError } from '../errors';
import type { AuditLog } from './audit';
import { type Identity, type NodeRole, formatIdentity } from './identity';
import type { NodeSecurity } from './node-security';
import { type CallWithAuth, authorize, peerIdentity } from './peer-identity';

/** A grpc-js server call, unary or stream: what the check reads. */
export type AuthCall = CallWithAuth & { getPeer(): string };

export interface NodeAccessOptions {
  readonly audit?: AuditLog;
  /** Told about every refusal, after it is audited (metrics). */
  readonly onRefused?: (what: string, code: 'UNAUTHENTICATED' | 'PERMISSION_DENIED') => void;
}

export class NodeAccess {
  constructor(
    readonly security: NodeSecurity,
    private readonly options: NodeAccessOptions = {},
  ) {}

  get enforced(): boolean {
    return this.security.kind === 'tls';
  }

  /**
   * The caller's identity when its role is in `roles` and `also` (if given) does not throw; throws
   * UnauthenticatedError / PermissionDeniedError otherwise. Undefined without TLS (nothing checked).
   */
  require(call: AuthCall, roles: readonly NodeRole[], what: string, also?: (who: Identity) => void): Identity | undefined {
    if (!this.enforced) return undefined;
    let who: Identity | undefined;
    try {
      who = authorize(call, roles, what);
      also?.(who);
      return who;
    } catch (err) {
      const bora = asBoraError(err);
      const code = bora.code === 'PERMISSION_DENIED' ? 'PERMISSION_DENIED' : 'UNAUTHENTICATED';
      const known = who ?? peerIdentity(call);
      this.options.audit?.record({ who: known === undefined ? peerAddress(call) : formatIdentity(known), what, outcome: 'refused', detail: bora.message });
      this.options.onRefused?.(what, code);
      throw bora;
    }
  }
}

/** Refuses a worker that is not among `workers`; for use as NodeAccess.require's `also`. */
export function workerIn(workers: ReadonlySet<string>, what: string): (who: Identity) => void {
  return (who) => {
    if (who.role === 'worker' && !workers.has(who.id)) throw new PermissionDeniedError(`${what} is not allowed for ${formatIdentity(who)}: not a worker of the current plan`);
  };
}

function peerAddress(call: AuthCall): string {
  try {
    return call.getPeer();
  } catch {
    return 'unknown';
  }
}
