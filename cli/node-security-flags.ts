/**
 * The transport security flags of `bora worker` and `bora coordinator`: `--ca FILE --cert FILE
 * --key FILE` (the node's own certificate, from the cluster CA; its identity is read from it) or
 * `--insecure` (plaintext, development only), and `--audit-log FILE`. Giving neither mode keeps
 * plaintext, with the same loud warning, so that callers from before TLS keep working.
 */
import { BoraError, InvalidArgumentError } from '../common/errors';
import { type AuditLog, openAuditFile } from '../common/security/audit';
import type { Logger } from '../common/logging/logger';
import type { NodeRole } from '../common/security/identity';
import { INSECURE, type NodeSecurity, insecureWarning, tlsNodeSecurity } from '../common/security/node-security';

export const NODE_SECURITY_FLAGS = {
  ca: { type: 'string' },
  cert: { type: 'string' },
  key: { type: 'string' },
  insecure: { type: 'boolean' },
  'audit-log': { type: 'string' },
} as const;

export interface NodeSecurityFlagValues {
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
  readonly insecure?: boolean;
}

/** Reads and checks the certificate files now: a node must not start on unusable ones (exit 2). */
export function nodeSecurityFromFlags(v: NodeSecurityFlagValues, role: NodeRole): NodeSecurity {
  const given = (['ca', 'cert', 'key'] as const).filter((f) => v[f] !== undefined);
  if (v.insecure === true) {
    if (given.length > 0) throw new InvalidArgumentError(`--insecure cannot be combined with ${given.map((f) => `--${f}`).join(', ')}`);
    return INSECURE;
  }
  if (given.length === 0) throw new InvalidArgumentError('give the node its certificate (--ca, --cert and --key), or --insecure for a plaintext node (development only)');
  if (given.length < 3) throw new InvalidArgumentError('--ca, --cert and --key go together (or --insecure, for development only)');
  try {
    return tlsNodeSecurity({ ca: v.ca!, cert: v.cert!, key: v.key! }, role);
  } catch (err) {
    if (err instanceof BoraError) throw err;
    throw new InvalidArgumentError(`cannot read the node's certificate files: ${(err as Error).message}`, { cause: err });
  }
}

/** Prints the insecure-mode warning on stderr; nothing with TLS. */
export function warnIfInsecure(security: NodeSecurity, what: string, log?: Logger): void {
  if (security.kind !== 'insecure') return;
  if (log === undefined) process.stderr.write(`${insecureWarning(what)}\n`);
  else log.warn(insecureWarning(what));
}

export function auditLogFromFlag(path: string | undefined): AuditLog | undefined {
  if (path === undefined) return undefined;
  if (path === '') throw new InvalidArgumentError('--audit-log needs a file name');
  return openAuditFile(path);
}
