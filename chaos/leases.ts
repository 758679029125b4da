/**
 * Lease audit: once a cluster has been quiet for longer than a lease TTL, every lease still alive
 * in etcd is being kept alive by someone, so each must hold a key of a process that is running:
 * a worker's `members/<id>` (and its ready marks), a coordinator's election key or its address.
 * A lease holding no key, or only keys of processes that are gone, is a leak.
 */
import { DEFAULT_PREFIX } from '../common/cluster/etcd-keys';
import type { ChaosCluster } from './cluster';

export interface LeaseAudit {
  readonly leases: number;
  readonly leaks: string[];
}

export async function auditLeases(cluster: ChaosCluster): Promise<LeaseAudit> {
  const client = cluster.etcdClient();
  try {
    const running = new Set([...cluster.pids().keys()]);
    // A coordinator's keys hold the address it advertises (its fault proxy's on a proxied cluster).
    const coordinatorByAddress = new Map(cluster.coordinatorNames().flatMap((n) => [[cluster.apiAddress(n), n] as const, [cluster.advertisedAddress(n), n] as const]));
    const { leases } = await client.leaseClient.leaseLeases();
    const leaks: string[] = [];
    let alive = 0;
    for (const { ID } of leases) {
      const ttl = await client.leaseClient.leaseTimeToLive({ ID, keys: true });
      if (Number(ttl.TTL) < 0) continue; // expired while we listed
      alive += 1;
      const keys = ttl.keys.map((k) => Buffer.from(k).toString());
      if (keys.length === 0) {
        leaks.push(`lease ${ID} holds no key (TTL ${ttl.TTL} s left)`);
        continue;
      }
      const owners = await Promise.all(keys.map((key) => ownerOf(key)));
      if (!owners.some((o) => o !== undefined && running.has(o))) leaks.push(`lease ${ID} holds only keys of stopped processes: ${keys.join(', ')} (owners ${owners.map((o) => o ?? '?').join(', ')})`);
    }
    return { leases: alive, leaks };

    async function ownerOf(key: string): Promise<string | undefined> {
      const member = new RegExp(`^${DEFAULT_PREFIX}/(?:members/([^/]+)|ready/([^/]+)/\\d+)$`).exec(key);
      if (member !== null) return member[1] ?? member[2];
      const value = await client.get(key).string().catch(() => null);
      return value === null ? undefined : coordinatorByAddress.get(value);
    }
  } finally {
    client.close();
  }
}
