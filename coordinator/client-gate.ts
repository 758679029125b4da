/**
 * Who may call the client API, and how much. Every call names an API key
 * (`authorization: Bearer KEY`):
 *
 *   - Generate, SubmitPrompt, Chat and Embed need the `client` or `admin` role; Generate, Embed and
 *     each Chat turn then pass admission (per-key requests/s, generated tokens/min and concurrent streams,
 *     one bounded queue: admission.ts), refused with RESOURCE_EXHAUSTED and a retry-after;
 *   - Status: either role; a `client` gets the reduced view (no worker addresses or ids);
 *   - Drain needs `admin`, except that a worker may drain itself, identified by its own
 *     certificate (the graceful stop of worker/self-drain.ts); no other worker's;
 *   - AddModelVersion, ListModelVersions and RemoveModelVersion (the model registry) need `admin`.
 *
 * A missing or unknown key is UNAUTHENTICATED, a wrong role PERMISSION_DENIED. Every refusal and
 * every admin call is written to the audit log. Without a key store (a cluster started with
 * --insecure, for development only) every caller is an anonymous admin and nothing is limited.
 */
import { asBoraError } from '../common/errors';
import type { ApiKeyPrincipal, ApiKeyRole, ApiKeyStore, MetadataLike } from '../common/security/api-keys';
import type { AuditLog } from '../common/security/audit';
import type { Admission, AdmissionTicket } from './admission';
import { peerIdentity, type CallWithAuth } from '../common/security/peer-identity';

export type ClientMethod = 'Generate' | 'SubmitPrompt' | 'Chat' | 'Embed' | 'Status' | 'Drain' | 'AddModelVersion' | 'ListModelVersions' | 'RemoveModelVersion';

const ALLOWED_ROLES: Readonly<Record<ClientMethod, readonly ApiKeyRole[]>> = {
  Generate: ['client', 'admin'],
  SubmitPrompt: ['client', 'admin'],
  Chat: ['client', 'admin'],
  Embed: ['client', 'admin'],
  Status: ['client', 'admin'],
  Drain: ['admin'],
  AddModelVersion: ['admin'],
  ListModelVersions: ['admin'],
  RemoveModelVersion: ['admin'],
};

/** The caller of an open (insecure) cluster. */
const ANONYMOUS: ApiKeyPrincipal = { name: 'anonymous', role: 'admin' };

/** What a call offers for identification: its metadata, and the peer address for the audit log. */
export interface ClientCall {
  readonly metadata: MetadataLike;
  getPeer(): string;
}

export interface ClientGateOptions {
  /** Undefined: an open cluster (development only). */
  readonly keys: ApiKeyStore | undefined;
  readonly admission: Admission | undefined;
  readonly audit: AuditLog | undefined;
}

export class ClientGate {
  constructor(private readonly options: ClientGateOptions) {}

  /** The caller of `method`; throws UNAUTHENTICATED or PERMISSION_DENIED (and audits it). */
  principal(call: ClientCall, method: ClientMethod): ApiKeyPrincipal {
    const keys = this.options.keys;
    if (keys === undefined) return ANONYMOUS;
    try {
      return keys.authorize(call.metadata, ALLOWED_ROLES[method], method);
    } catch (err) {
      this.options.audit?.record({ who: `peer ${call.getPeer()}`, what: method, outcome: 'refused', detail: asBoraError(err).message });
      throw err;
    }
  }

  /**
   * Who drains `workerId`: the worker itself when the call carries that worker's certificate
   * (verified by the port's TLS against the cluster CA), else an `admin` key as for any call.
   */
  drainer(call: ClientCall & CallWithAuth, workerId: string): ApiKeyPrincipal {
    const self = peerIdentity(call);
    if (self?.role === 'worker' && self.id === workerId) return { name: `worker ${self.id}, by its certificate`, role: 'admin' };
    return this.principal(call, 'Drain');
  }

  /**
   * A stream admitted for `who`: resolves with the ticket that must be released when the stream
   * ends; rejects with AdmissionRefusedError past a limit (audited), or CANCELLED when `signal`
   * aborts while it waits. Undefined when nothing is limited.
   */
  async admit(who: ApiKeyPrincipal, call: ClientCall, method: ClientMethod, signal: AbortSignal): Promise<AdmissionTicket | undefined> {
    const admission = this.options.admission;
    if (admission === undefined) return undefined;
    try {
      return await admission.admit(who.name, signal);
    } catch (err) {
      const bora = asBoraError(err);
      if (bora.code === 'RESOURCE_EXHAUSTED') this.audit(who, call, method, 'refused', bora.message);
      throw err;
    }
  }

  /** An event about `who`'s call: refusals here, admin calls' outcomes in the handlers. */
  audit(who: ApiKeyPrincipal, call: ClientCall, what: string, outcome: 'ok' | 'refused' | 'failed', detail?: string): void {
    this.options.audit?.record({ who: `key ${who.name} (${who.role}) from ${call.getPeer()}`, what, outcome, ...(detail === undefined ? {} : { detail }) });
  }
}
