/**
 * Who a certificate speaks for: a role and an id. The identity lives in the certificate itself, in
 * two places that must agree:
 *
 *   - a SAN URI `bora://<role>/<id>`, the authoritative form (URIs are typed, unambiguous, and
 *     TLS libraries expose them without parsing the subject);
 *   - the subject CN `<role>-<id>`, because etcd 3.4's --client-cert-auth takes the CN as the etcd
 *     user name. The CN therefore doubles as the etcd user: readable in `etcdctl user list`,
 *     grouped by role when sorted, and free of ':' (etcdctl reads `--user a:b` as name:password).
 *     Roles never contain '-', so splitting at the first '-' is unambiguous even for ids that do.
 */
import { InvalidArgumentError } from '../errors';

/**
 * `etcd` is the cluster's etcd server (its serving and peer certificate). It is a role of its own
 * so that etcd's key can never pass for a Bora node or admin, and its CN names no etcd user with
 * permissions.
 */
export const NODE_ROLES = ['coordinator', 'worker', 'admin', 'client', 'etcd'] as const;
export type NodeRole = (typeof NODE_ROLES)[number];

export interface Identity {
  readonly role: NodeRole;
  readonly id: string;
}

/** Same alphabet as worker ids (they appear in etcd keys and user names): no '/', no spaces. */
const ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;
const URI_SCHEME = 'bora:';

export function isNodeRole(raw: string): raw is NodeRole {
  return (NODE_ROLES as readonly string[]).includes(raw);
}

/** Checks role and id; throws InvalidArgumentError naming what is wrong. */
export function identity(role: string, id: string): Identity {
  if (!isNodeRole(role)) throw new InvalidArgumentError(`role must be one of ${NODE_ROLES.join(', ')}, got ${JSON.stringify(role)}`);
  if (!ID_PATTERN.test(id)) throw new InvalidArgumentError(`id ${JSON.stringify(id)} must match ${ID_PATTERN.source}`);
  return { role, id };
}

/** `bora://worker/w1` */
export function identityUri(who: Identity): string {
  return `${URI_SCHEME}//${who.role}/${who.id}`;
}

/** `worker-w1`: the certificate CN and the etcd user name. */
export function identityCommonName(who: Identity): string {
  return `${who.role}-${who.id}`;
}

/** The identity in a `bora://role/id` URI, or undefined when the string is not one. */
export function parseIdentityUri(uri: string): Identity | undefined {
  const prefix = `${URI_SCHEME}//`;
  if (!uri.startsWith(prefix)) return undefined;
  const rest = uri.slice(prefix.length);
  const slash = rest.indexOf('/');
  if (slash < 0) return undefined;
  const role = rest.slice(0, slash);
  const id = rest.slice(slash + 1);
  if (!isNodeRole(role) || !ID_PATTERN.test(id)) return undefined;
  return { role, id };
}

/** The identity in a `role-id` common name, or undefined when it is not one. */
export function parseIdentityCommonName(cn: string): Identity | undefined {
  const dash = cn.indexOf('-');
  if (dash < 0) return undefined;
  const role = cn.slice(0, dash);
  const id = cn.slice(dash + 1);
  if (!isNodeRole(role) || !ID_PATTERN.test(id)) return undefined;
  return { role, id };
}

export function sameIdentity(a: Identity, b: Identity): boolean {
  return a.role === b.role && a.id === b.id;
}

export function formatIdentity(who: Identity): string {
  return `${who.role}/${who.id}`;
}
