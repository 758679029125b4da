/**
 * etcd with TLS, client-certificate auth and Bora's RBAC, against a real etcd: each worker writes
 * only its own member and ready keys, only coordinators write the plan and win the election, and
 * clients without a certificate from the cluster CA are refused at the handshake.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type Etcd3, EtcdPermissionDeniedError } from 'etcd3';
import { EtcdKeys, etcdClientOptions } from '../../../common/cluster/etcd-keys';
import { workerId } from '../../../common/ids';
import { applyEtcdRbac, etcdRbacPlan, workerRole } from '../../../common/security/etcd-rbac';
import { Etcd3 as Etcd3Client } from 'etcd3';
import { type TlsEtcd, startTlsEtcd } from '../../support/etcd-tls';
import { type TestPki, testPki } from '../../support/security';

const keys = new EtcdKeys('/bora');
const w1 = workerId('w1');
const w2 = workerId('w2');

function isDenied(err: unknown): boolean {
  return err instanceof EtcdPermissionDeniedError;
}

async function refused(op: Promise<unknown>, what: string): Promise<void> {
  const err = await op.then(() => undefined, (e: unknown) => e);
  assert.ok(err !== undefined, `${what} was allowed`);
  assert.ok(isDenied(err), `${what}: ${String(err)}`);
}

describe('etcd TLS + client-cert auth + RBAC', () => {
  let etcd: TlsEtcd;
  let other: TestPki;
  const clients: Etcd3[] = [];
  let admin: Etcd3;
  let worker1: Etcd3;
  let coordinator: Etcd3;

  before(async () => {
    etcd = await startTlsEtcd();
    other = await testPki();
    const open = async (role: string, id: string): Promise<Etcd3> => {
      const client = etcd.client(await etcd.pki.issue(role, id));
      clients.push(client);
      return client;
    };
    admin = await open('admin', 'ops');
    const plan = etcdRbacPlan(keys, { workers: ['w1', 'w2', 'w10'], coordinators: ['c1'], admins: ['ops'] });
    await applyEtcdRbac(admin, plan, { enable: true });
    worker1 = await open('worker', 'w1');
    coordinator = await open('coordinator', 'c1');
  });
  after(async () => {
    for (const c of clients) c.close();
    await etcd?.stop();
    other?.remove();
  });

  test('a worker writes its own member and ready keys, on a lease, and reads the plan', async () => {
    await worker1.put(keys.member(w1)).value('{}');
    await worker1.put(keys.ready(3, w1)).value('');
    const lease = worker1.lease(5);
    await lease.put(keys.ready(4, w1)).value('');
    await lease.revoke();
    assert.equal(await worker1.get(keys.member(w1)).string(), '{}');
    await worker1.get(keys.plan()).string(); // reading is allowed (absent is fine)
    await worker1.delete().key(keys.ready(3, w1));
  });

  test('a worker cannot write another worker\'s keys (w10 included), the plan, or the election', async () => {
    await refused(worker1.put(keys.member(w2)).value('{}').exec(), 'w1 writing members/w2');
    await refused(worker1.put(keys.member(workerId('w10'))).value('{}').exec(), 'w1 writing members/w10');
    await refused(worker1.put(keys.ready(3, w2)).value('').exec(), 'w1 writing ready/w2/3');
    await refused(worker1.put(keys.plan()).value('{}').exec(), 'w1 writing the plan');
    await refused(worker1.put(keys.planEpoch()).value('9').exec(), 'w1 writing the plan epoch');
    await refused(worker1.put(`${keys.electionKeysPrefix()}forged`).value('x').exec(), 'w1 writing an election key');
    await refused(worker1.delete().key(keys.member(w2)).exec(), 'w1 deleting members/w2');
  });

  test('a coordinator writes the plan and wins the election, but not a worker\'s records', async () => {
    await coordinator.put(keys.plan()).value('{"epoch":1}');
    await coordinator.put(keys.planEpoch()).value('1');
    assert.equal(await worker1.get(keys.plan()).string(), '{"epoch":1}');
    const campaign = coordinator.election(keys.electionCoordinator(), 5).campaign('127.0.0.1:9000');
    await new Promise<void>((resolve, reject) => {
      campaign.once('elected', () => resolve());
      campaign.once('error', reject);
    });
    assert.equal(await coordinator.election(keys.electionCoordinator(), 5).leader(), '127.0.0.1:9000');
    await campaign.resign();
    await refused(coordinator.put(keys.member(w1)).value('{}').exec(), 'a coordinator writing members/w1');
  });

  test('no client certificate, a plaintext client, or a certificate from another CA: refused', async () => {
    const noCert = new Etcd3Client({
      ...etcdClientOptions({ hosts: etcd.url, callTimeoutMs: 3_000 }),
      credentials: { rootCertificate: Buffer.from(etcd.pki.ca.certPem) },
    });
    const plaintext = new Etcd3Client(etcdClientOptions({ hosts: etcd.url.replace('https:', 'http:'), callTimeoutMs: 3_000 }));
    const foreign = etcd.client({ ...(await other.issue('worker', 'w1')), ca: `${etcd.pki.dir}/ca.pem` });
    try {
      for (const [client, what] of [[noCert, 'no certificate'], [plaintext, 'plaintext'], [foreign, 'another CA']] as const) {
        const err = await client.get(keys.plan()).string().then(() => undefined, (e: unknown) => e);
        assert.ok(err !== undefined, `a client with ${what} read the plan`);
        // Refused at the connection (the TLS handshake), not merely by RBAC after it.
        assert.match(String(err), /UNAVAILABLE/, `${what}: ${String(err)}`);
      }
    } finally {
      noCert.close();
      plaintext.close();
      foreign.close();
    }
  });

  test('applying again is idempotent and can add a worker', async () => {
    await applyEtcdRbac(admin, etcdRbacPlan(keys, { workers: ['w1', 'w3'], coordinators: ['c1'], admins: ['ops'] }), { enable: false });
    const worker3 = etcd.client(await etcd.pki.issue('worker', 'w3'));
    clients.push(worker3);
    await worker3.put(keys.member(workerId('w3'))).value('{}');
    await refused(worker3.put(keys.member(w1)).value('{}').exec(), 'w3 writing members/w1');
    const perms = await admin.role(workerRole(keys, 'w1').name).permissions();
    assert.equal(perms.length, workerRole(keys, 'w1').grants.length, 'no grant twice'); // 5: read all, read the election, member, ready marks, version failure reports
  });
});
