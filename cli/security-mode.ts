/**
 * Whether `bora up` builds a secure cluster (PKI, API keys, etcd with TLS, client-certificate
 * auth and RBAC, nodes and clients with certificates) or a plaintext one for development.
 * Secure is the default; `--secure` and `--insecure` choose explicitly.
 */
import { InvalidArgumentError } from '../common/errors';

export const SECURE_BY_DEFAULT = true;

export type SecurityMode = 'secure' | 'insecure';

export function securityMode(flags: { secure?: boolean; insecure?: boolean }, secureByDefault: boolean = SECURE_BY_DEFAULT): SecurityMode {
  if (flags.secure === true && flags.insecure === true) throw new InvalidArgumentError('give --secure or --insecure, not both');
  if (flags.secure === true) return 'secure';
  if (flags.insecure === true) return 'insecure';
  return secureByDefault ? 'secure' : 'insecure';
}

/** Printed to stderr by `bora up --insecure`: nobody should mistake such a cluster for a protected one. */
export const INSECURE_WARNING = [
  '',
  '*** INSECURE CLUSTER: for development only. ***',
  'etcd and every gRPC port speak plaintext, nodes and clients are not authenticated, and anyone',
  'who can reach a port can register a worker, read every stream, drain nodes and fetch weights.',
  '`bora up --secure` starts one with TLS, certificates, etcd RBAC and API keys.',
  '',
].join('\n');
