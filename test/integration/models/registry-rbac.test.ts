/**
 * The model registry under etcd's RBAC (common/security/etcd-rbac.ts), against a real TLS etcd:
 * a coordinator registers and removes versions (its admin API writes etcd); a worker reads a
 * record and writes failure reports under its own id only, never a record or another worker's
 * report; an admin certificate (what `bora models --state-dir` uses on a secure cluster) does
 * everything.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type Etcd3, EtcdPermissionDeniedError } from 'etcd3';
import { EtcdKeys } from '../../../common/cluster/etcd-keys';
import { workerId } from '../../../common/ids';
import { ModelRegistry } from '../../../common/models/model-registry';
import { describeModelVersion } from '../../../common/models/weight-digests';
import type { ModelVersionRecord } from '../../../common/models/version-record';
import { applyEtcdRbac, etcdRbacPlan } from '../../../common/security/etcd-rbac';
import { fixtureDir } from '../../support/checkpoints';
import { type TlsEtcd, startTlsEtcd } from '../../support/etcd-tls';

const keys = new EtcdKeys('/bora');
const w1 = workerId('w1');
const w2 = workerId('w2');

async function refused(op: Promise<unknown>, what: string): Promise<void> {
  const err = await op.then(() => undefined, (e: unknown) => e);
  assert.ok(err !== undefined, `${what} was allowed`);
  assert.ok(err instanceof EtcdPermissionDeniedError, `${what}: ${String(err)}`);
}

describe('model registry under etcd RBAC', () => {
  let etcd: TlsEtcd;
  const clients: Etcd3[] = [];
  let admin: Etcd3;
  let worker1: Etcd3;
  let coordinator: Etcd3;
  let record: ModelVersionRecord;

  before(async () => {
    etcd = await startTlsEtcd();
    const open = async (role: string, id: string): Promise<Etcd3> => {
      const client = etcd.client(await etcd.pki.issue(role, id));
      clients.push(client);
      return client;
    };
    admin = await open('admin', 'ops');
    await applyEtcdRbac(admin, etcdRbacPlan(keys, { workers: ['w1', 'w2'], coordinators: ['c1'], admins: ['ops'] }), { enable: true });
    worker1 = await open('worker', 'w1');
    coordinator = await open('coordinator', 'c1');
    record = await describeModelVersion({ name: 'tiny', version: 'v1' }, fixtureDir('tiny-mistral'));
  });
  after(async () => {
    for (const c of clients) c.close();
    await etcd?.stop();
  });

  const failure = (worker: string) => ({ worker, ref: 'tiny@v1', file: '/m/model.safetensors', expectedSha256: 'a'.repeat(64), actualSha256: 'b'.repeat(64), at: new Date().toISOString() });

  test('a coordinator registers a version; a worker reads it and reports only under its own id', { timeout: 30_000 }, async () => {
    await new ModelRegistry(coordinator, keys).add(record);
    const asWorker = new ModelRegistry(worker1, keys);
    assert.deepEqual(await asWorker.get({ name: 'tiny', version: 'v1' }), record);
    await asWorker.reportFailure(w1, failure('w1'));
    assert.equal((await asWorker.describe({ name: 'tiny', version: 'v1' })).status, 'failed');
    await refused(asWorker.reportFailure(w2, failure('w2')), "w1 writing w2's failure report");
    await refused(worker1.put(keys.modelVersion('tiny@v2')).value(JSON.stringify({ ...record, version: 'v2' })).exec(), 'w1 registering a version');
    await refused(worker1.delete().key(keys.modelVersion('tiny@v1')).exec(), 'w1 deleting a version');
    await refused(asWorker.remove({ name: 'tiny', version: 'v1' }), 'w1 removing a version');
  });

  test("a coordinator removes a version with every worker's report; an admin does everything", { timeout: 30_000 }, async () => {
    await new ModelRegistry(coordinator, keys).remove({ name: 'tiny', version: 'v1' });
    assert.deepEqual(await admin.getAll().prefix(`${keys.prefix}/models/`).keys(), []);
    const asAdmin = new ModelRegistry(admin, keys);
    await asAdmin.add(record);
    await asAdmin.reportFailure(w2, failure('w2'));
    await asAdmin.remove({ name: 'tiny', version: 'v1' });
    assert.deepEqual(await asAdmin.list(), []);
  });
});
