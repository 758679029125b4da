/**
 * `bora etcd-rbac`, the one-shot step that gives an etcd not started by `bora up` (docker-compose)
 * Bora's users and roles: run as the real command against a TLS etcd, it confines each worker to
 * its own keys; bad input exits with status 2 and touches nothing.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { type Etcd3, EtcdPermissionDeniedError } from 'etcd3';
import { EtcdKeys } from '../../../common/cluster/etcd-keys';
import { workerId } from '../../../common/ids';
import type { CertFiles } from '../../../common/security/pki-files';
import { boraBin } from '../../support/cluster';
import { type TlsEtcd, startTlsEtcd } from '../../support/etcd-tls';

const keys = new EtcdKeys();

function bora(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [boraBin(), 'etcd-rbac', ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('bora etcd-rbac', () => {
  let etcd: TlsEtcd;
  let admin: CertFiles;
  const clients: Etcd3[] = [];

  before(async () => {
    etcd = await startTlsEtcd();
    admin = await etcd.pki.issue('admin', 'ops');
  });
  after(async () => {
    for (const c of clients) c.close();
    await etcd?.stop();
  });

  test('bad input exits with status 2', () => {
    const tls = ['--ca', admin.ca, '--cert', admin.cert, '--key', admin.key];
    for (const args of [
      ['--etcd', etcd.url.replace('https:', 'http:'), ...tls, '--workers', 'w1'],
      ['--etcd', etcd.url, ...tls],
      ['--etcd', etcd.url, ...tls, '--workers', 'w 1'],
      ['--etcd', etcd.url, ...tls, '--workers', 'w1,w1'],
      ['--etcd', etcd.url, '--workers', 'w1'],
    ]) {
      const result = bora(...args);
      assert.equal(result.status, 2, `${args.join(' ')}: ${result.stderr}`);
    }
  });

  test('applies users and roles and enables auth; running it again adds a worker', async () => {
    const tls = ['--ca', admin.ca, '--cert', admin.cert, '--key', admin.key];
    const first = bora('--etcd', etcd.url, ...tls, '--workers', 'w1,w2', '--coordinators', 'c1', '--admins', 'ops');
    assert.equal(first.status, 0, first.stderr);
    assert.deepEqual(JSON.parse(first.stdout), { etcd: etcd.url, workers: ['w1', 'w2'], coordinators: ['c1'], admins: ['ops'], authEnabled: true });
    const again = bora('--etcd', etcd.url, ...tls, '--workers', 'w1,w2,w3', '--coordinators', 'c1', '--admins', 'ops');
    assert.equal(again.status, 0, again.stderr);

    const w3 = etcd.client(await etcd.pki.issue('worker', 'w3'));
    const coordinator = etcd.client(await etcd.pki.issue('coordinator', 'c1'));
    clients.push(w3, coordinator);
    await w3.put(keys.member(workerId('w3'))).value('{}');
    await coordinator.put(keys.plan()).value('{}');
    // Each write starts only when awaited: a refusal must never be a rejection no one handles yet.
    for (const [op, what] of [
      [() => w3.put(keys.plan()).value('{}').exec(), 'w3 writing the plan'],
      [() => w3.put(keys.member(workerId('w1'))).value('{}').exec(), 'w3 writing members/w1'],
    ] as const) {
      const err = await op().then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof EtcdPermissionDeniedError, `${what}: ${String(err)}`);
    }
  });
});
