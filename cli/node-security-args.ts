/**
 * The security flags `bora up` gives its nodes: each node's own certificate (also its etcd client
 * certificate, since the etcd URL is https://), the audit log, and for the coordinator the API key
 * hashes. One place, so that the names stay those `bora worker` and `bora coordinator` accept.
 */
import type { CertFiles } from '../common/security/pki-files';
import type { LocalPki } from './local-pki';
import { SECURE_BY_DEFAULT } from './security-mode';

/** What a node started without certificates is told: plaintext must be asked for (`--insecure`). */
export function insecureNodeArgs(secureByDefault: boolean = SECURE_BY_DEFAULT): string[] {
  return secureByDefault ? ['--insecure'] : [];
}

export function nodeTlsArgs(files: CertFiles): string[] {
  return ['--ca', files.ca, '--cert', files.cert, '--key', files.key];
}

export function coordinatorSecurityArgs(pki: LocalPki, auditLog: string): string[] {
  return [...nodeTlsArgs(pki.coordinator), '--api-keys', pki.apiKeysFile, '--audit-log', auditLog];
}

export function workerSecurityArgs(pki: LocalPki, workerId: string, auditLog: string): string[] {
  const files = pki.workers.get(workerId);
  if (files === undefined) throw new Error(`no certificate was issued for worker ${workerId}`); // a bug in `up`
  return [...nodeTlsArgs(files), '--audit-log', auditLog];
}
