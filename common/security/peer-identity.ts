/**
 * Who is on the other end of a server call, from the TLS peer certificate, and the check every
 * protected handler makes before doing anything.
 */
import { PermissionDeniedError, UnauthenticatedError } from '../errors';
import { type Identity, type NodeRole, formatIdentity } from './identity';
import { certificateIdentity } from './pki';

/** The part of a grpc-js server call (unary or stream) this needs; grpc-js does not export the
 * AuthContext type from its index. */
export interface CallWithAuth {
  getAuthContext(): { transportSecurityType?: string; sslPeerCertificate?: { raw?: Buffer } } | null;
}

/**
 * The identity in the peer's certificate, or undefined when there is none: a plaintext
 * connection, no client certificate, or one TLS did not verify against the cluster CA (grpc-js
 * reports a peer certificate only for verified connections), or one without a Bora identity.
 */
export function peerIdentity(call: CallWithAuth): Identity | undefined {
  const auth = call.getAuthContext();
  const raw = auth?.sslPeerCertificate?.raw;
  if (auth?.transportSecurityType !== 'ssl' || raw === undefined) return undefined;
  try {
    return certificateIdentity(raw);
  } catch {
    return undefined;
  }
}

/**
 * The caller's identity when its role is in `allowedRoles`. Throws UnauthenticatedError when the
 * caller has no verified certificate identity and PermissionDeniedError when its role is not
 * allowed; `what` names the call in the message (e.g. "Drain").
 */
export function authorize(call: CallWithAuth, allowedRoles: readonly NodeRole[], what: string): Identity {
  const who = peerIdentity(call);
  if (who === undefined) throw new UnauthenticatedError(`${what} needs a client certificate from the cluster CA`);
  if (!allowedRoles.includes(who.role)) {
    throw new PermissionDeniedError(`${what} is not allowed for ${formatIdentity(who)} (allowed roles: ${allowedRoles.join(', ')})`);
  }
  return who;
}
