/**
 * The etcd server of a local (`bora up`) cluster, one member on 127.0.0.1 with its data under
 * STATE/etcd-data.
 *
 * Secure (given a LocalPki): clients and peers speak TLS, every client must present a certificate
 * from the cluster CA (--client-cert-auth), and once it answers, RBAC (etcd-rbac.ts) is applied
 * with the admin certificate and auth enabled, so each worker may write only its own records and
 * only the coordinator the plan and the election. Insecure: plaintext, no auth (development only).
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { EtcdKeys } from '../common/cluster/etcd-keys';
import { applyEtcdRbac, etcdRbacPlan } from '../common/security/etcd-rbac';
import { etcdTlsClientOptions, etcdTlsFlags } from '../common/security/etcd-tls';
import type { CertFiles } from '../common/security/pki-files';
import { LOCAL_COORDINATOR_ID, LOCAL_ID, type LocalPki } from './local-pki';
import { findEtcd, freePort, spawnDetached, waitFor } from './processes';

const START_TIMEOUT_MS = 20_000;
const PROBE_TIMEOUT_MS = 1_000;

export interface LocalEtcd {
  readonly url: string;
  readonly pid: number;
}

/** GET /health over TLS, presenting `files`; true on 200. */
export function tlsHealthy(url: string, files: CertFiles): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(
      `${url}/health`,
      { timeout: PROBE_TIMEOUT_MS, ca: readFileSync(files.ca), cert: readFileSync(files.cert), key: readFileSync(files.key) },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode === 200));
      },
    );
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

async function plainHealthy(url: string): Promise<boolean> {
  const response = await fetch(`${url}/health`, { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) }).catch(() => undefined);
  return response?.ok === true;
}

/** Users and roles for the local cluster's principals, then `auth enable` (idempotent). */
export async function applyLocalRbac(url: string, pki: LocalPki): Promise<void> {
  const admin = new Etcd3(etcdTlsClientOptions({ hosts: url }, pki.admin));
  try {
    const plan = etcdRbacPlan(new EtcdKeys(), { workers: [...pki.workers.keys()], coordinators: [LOCAL_COORDINATOR_ID], admins: [LOCAL_ID] });
    await applyEtcdRbac(admin, plan, { enable: true });
  } finally {
    admin.close();
  }
}

export async function startLocalEtcd(stateDir: string, pki?: LocalPki): Promise<LocalEtcd> {
  const binary = findEtcd();
  const clientPort = await freePort();
  const peerPort = await freePort();
  const scheme = pki === undefined ? 'http' : 'https';
  const url = `${scheme}://127.0.0.1:${clientPort}`;
  const peerUrl = `${scheme}://127.0.0.1:${peerPort}`;
  const dataDir = join(stateDir, 'etcd-data');
  const args =
    pki === undefined
      ? [
          '--name', 'bora', '--data-dir', dataDir,
          '--listen-client-urls', url, '--advertise-client-urls', url,
          '--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl,
          '--initial-cluster', `bora=${peerUrl}`,
        ]
      : etcdTlsFlags({ name: 'bora', dataDir, clientUrl: url, peerUrl, files: pki.etcd });
  const pid = spawnDetached(binary, args, join(stateDir, 'etcd.log'));
  await waitFor(`etcd to answer at ${url} (see ${stateDir}/etcd.log)`, START_TIMEOUT_MS, async () => {
    const healthy = pki === undefined ? await plainHealthy(url) : await tlsHealthy(url, pki.admin);
    return healthy ? true : undefined;
  });
  if (pki !== undefined) await applyLocalRbac(url, pki);
  return { url, pid };
}
