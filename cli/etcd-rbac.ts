/**
 * bora etcd-rbac: gives an etcd that serves TLS with --client-cert-auth Bora's users and roles
 * (etcd-rbac.ts) and enables auth, for deployments where `bora up` does not start etcd (the
 * docker-compose file runs it as a one-shot step; add a worker by running it again with the new id).
 *
 *   bora etcd-rbac --etcd https://HOST:PORT --ca FILE --cert FILE --key FILE
 *        --workers w1,w2,... [--coordinators c1,...] [--admins ops,...] [--prefix /bora]
 *        [--no-enable] [--timeout-ms MS]
 *
 * The certificate must be allowed to administer etcd: any certificate from the cluster CA before
 * auth is enabled, an admin certificate (root role) after; that admin's id should be in --admins
 * so that it keeps the root role once auth is on. It waits up to --timeout-ms for etcd to answer,
 * since a one-shot step may start before etcd listens.
 */
import { Etcd3 } from 'etcd3';
import { EtcdKeys } from '../common/cluster/etcd-keys';
import { InvalidArgumentError } from '../common/errors';
import { applyEtcdRbac, etcdRbacPlan } from '../common/security/etcd-rbac';
import { etcdTlsClientOptions } from '../common/security/etcd-tls';
import { identity } from '../common/security/identity';
import { intFlag, parseFlags, requireString } from './args';
import { waitFor } from './processes';

const FLAGS = {
  etcd: { type: 'string' },
  ca: { type: 'string' },
  cert: { type: 'string' },
  key: { type: 'string' },
  workers: { type: 'string' },
  coordinators: { type: 'string' },
  admins: { type: 'string' },
  prefix: { type: 'string' },
  'no-enable': { type: 'boolean' },
  'timeout-ms': { type: 'string' },
} as const;

const DEFAULT_TIMEOUT_MS = 60_000;
const CALL_TIMEOUT_MS = 5_000;

/** "w1,w2" -> ["w1", "w2"], each a valid identity id for `role`. */
function idList(value: string | undefined, flag: string, role: string): string[] {
  if (value === undefined) return [];
  const ids = value.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const id of ids) identity(role, id);
  if (new Set(ids).size !== ids.length) throw new InvalidArgumentError(`${flag} names an id twice: ${value}`);
  return ids;
}

export async function etcdRbacCommand(argv: string[]): Promise<void> {
  const { values: v } = parseFlags(argv, FLAGS);
  const url = requireString(v.etcd, '--etcd');
  if (!url.split(',').every((u) => u.startsWith('https://'))) throw new InvalidArgumentError(`--etcd must be https:// (RBAC over plaintext would send every identity in clear), got ${url}`);
  const files = { ca: requireString(v.ca, '--ca'), cert: requireString(v.cert, '--cert'), key: requireString(v.key, '--key') };
  const principals = {
    workers: idList(requireString(v.workers, '--workers'), '--workers', 'worker'),
    coordinators: idList(v.coordinators, '--coordinators', 'coordinator'),
    admins: idList(v.admins, '--admins', 'admin'),
  };
  const keys = new EtcdKeys(v.prefix);
  const timeoutMs = intFlag(v['timeout-ms'], '--timeout-ms', DEFAULT_TIMEOUT_MS);
  if (timeoutMs < 0) throw new InvalidArgumentError(`--timeout-ms must be 0 or more, got ${timeoutMs}`);
  // BORA_CHECK_ARGS=1: validate the command line and stop (deployment files are tested this way).
  if (process.env.BORA_CHECK_ARGS === '1') return;
  const client = new Etcd3(etcdTlsClientOptions({ hosts: url.split(','), callTimeoutMs: CALL_TIMEOUT_MS }, files));
  try {
    await waitFor(`etcd to answer at ${url}`, timeoutMs, async () => {
      await client.get(keys.plan()).string();
      return true;
    }, 500);
    await applyEtcdRbac(client, etcdRbacPlan(keys, principals), { enable: v['no-enable'] !== true });
  } finally {
    client.close();
  }
  process.stdout.write(`${JSON.stringify({ etcd: url, ...principals, authEnabled: v['no-enable'] !== true })}\n`);
}
