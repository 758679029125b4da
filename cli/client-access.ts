/**
 * Which credentials a client command uses, from its flags, the environment and a cluster's
 * cluster.json (its `security` block): `--ca/--cert/--key/--api-key` win, then BORA_API_KEY for
 * the key, then the state dir's block. `generate` speaks as a client (the client key); `status`
 * and `drain` as an admin (the admin key).
 */
import { InvalidArgumentError } from '../common/errors';
import type { ClusterSecurity } from './cluster-file';
import type { CoordinatorAccess } from './client-credentials';

export const API_KEY_ENV = 'BORA_API_KEY';

/** The flags every client command accepts (parseArgs options). */
export const ACCESS_FLAGS = {
  ca: { type: 'string' },
  cert: { type: 'string' },
  key: { type: 'string' },
  'api-key': { type: 'string' },
} as const;

export interface AccessFlags {
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
  readonly 'api-key'?: string;
}

export type AccessRole = 'client' | 'admin';

export function resolveAccess(
  flags: AccessFlags,
  security: ClusterSecurity | undefined,
  role: AccessRole,
  env: NodeJS.ProcessEnv = process.env,
): CoordinatorAccess | undefined {
  const ca = flags.ca ?? security?.ca;
  const fromBlock = flags.cert === undefined && flags.key === undefined;
  const cert = fromBlock ? security?.clientCert : flags.cert;
  const key = fromBlock ? security?.clientKey : flags.key;
  const envKey = env[API_KEY_ENV] === '' ? undefined : env[API_KEY_ENV];
  const apiKey = flags['api-key'] ?? envKey ?? (role === 'admin' ? security?.adminKey : security?.apiKey);
  if (ca === undefined) {
    if (cert !== undefined || key !== undefined) throw new InvalidArgumentError('--cert/--key need --ca FILE (the cluster CA) too');
    if (apiKey === undefined) return undefined;
    throw new InvalidArgumentError(`an API key (--api-key or ${API_KEY_ENV}) is only sent over TLS: give --ca FILE too`);
  }
  return { tls: { ca, ...(cert === undefined ? {} : { cert }), ...(key === undefined ? {} : { key }) }, ...(apiKey === undefined ? {} : { apiKey }) };
}
