/**
 * What a secure `bora up` builds, tested piece by piece with the real etcd: STATE/pki/ (CA,
 * certificates per node, admin and client certificates, API key hashes), etcd with TLS, client
 * certificates and RBAC, cluster.json's security block (mode 0600). Then the whole secure cluster
 * through the CLI.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Etcd3, EtcdPermissionDeniedError } from 'etcd3';
import { clusterAccess, clusterSecurity } from '../../../cli/cluster';
import { type ClusterFile, readClusterFile, writeClusterFile } from '../../../cli/cluster-file';
import { fetchStatus } from '../../../cli/inference-client';
import { type LocalEtcd, applyLocalRbac, startLocalEtcd } from '../../../cli/local-etcd';
import { type LocalPki, createLocalPki } from '../../../cli/local-pki';
import { stopProcesses } from '../../../cli/processes';
import { EtcdKeys, etcdClientOptions } from '../../../common/cluster/etcd-keys';
import { BoraError } from '../../../common/errors';
import { workerId } from '../../../common/ids';
import { loadApiKeyStore } from '../../../common/security/api-keys-file';
import { etcdTlsClientOptions } from '../../../common/security/etcd-tls';
import { verifyCertificate } from '../../../common/security/pki';
import type { CertFiles } from '../../../common/security/pki-files';
import { fixtureDir } from '../../support/checkpoints';
import { boraBin, generateOn, greedyIds, startCluster } from '../../support/cluster';
import { type TestPki, testPki } from '../../support/security';

const keys = new EtcdKeys();
const CALL_TIMEOUT_MS = 3_000;

async function refusedBy(op: Promise<unknown>, what: string, check: (err: unknown) => boolean): Promise<void> {
  const err = await op.then(() => undefined, (e: unknown) => e);
  assert.ok(err !== undefined, `${what} was allowed`);
  assert.ok(check(err), `${what}: ${String(err)}`);
}

const denied = (err: unknown): boolean => err instanceof EtcdPermissionDeniedError;
/** Refused at the TLS handshake: the client never gets as far as RBAC. */
const unreachable = (err: unknown): boolean => /UNAVAILABLE/.test(String(err));

describe('bora up, secure: PKI, API keys, etcd with TLS and RBAC', () => {
  let stateDir: string;
  let pki: LocalPki;
  let etcd: LocalEtcd;
  let other: TestPki;
  const clients: Etcd3[] = [];
  const open = (files: CertFiles): Etcd3 => {
    const client = new Etcd3(etcdTlsClientOptions({ hosts: etcd.url, callTimeoutMs: CALL_TIMEOUT_MS }, files));
    clients.push(client);
    return client;
  };

  before(async () => {
    stateDir = mkdtempSync(join(tmpdir(), 'bora-up-secure-'));
    pki = await createLocalPki({ stateDir, workerIds: ['w1', 'w2'] });
    etcd = await startLocalEtcd(stateDir, pki);
    other = await testPki();
  });
  after(async () => {
    for (const c of clients) c.close();
    if (etcd !== undefined) await stopProcesses([etcd.pid]);
    other?.remove();
    rmSync(stateDir, { recursive: true, force: true });
  });

  test('STATE/pki holds the CA and one certificate per principal, private keys 0600', () => {
    const expected: [CertFiles, string, string][] = [
      [pki.etcd, 'etcd', 'local'],
      [pki.coordinator, 'coordinator', 'c1'],
      [pki.workers.get('w1')!, 'worker', 'w1'],
      [pki.workers.get('w2')!, 'worker', 'w2'],
      [pki.admin, 'admin', 'local'],
      [pki.client, 'client', 'local'],
    ];
    for (const [files, role, id] of expected) {
      assert.equal(files.ca, join(stateDir, 'pki', 'ca.pem'));
      assert.deepEqual(verifyCertificate(readFileSync(files.cert), readFileSync(files.ca)), { role, id });
      assert.equal(statSync(files.key).mode & 0o777, 0o600, files.key);
    }
    assert.equal(statSync(join(stateDir, 'pki', 'ca-key.pem')).mode & 0o777, 0o600);
    const keyFiles = readdirSync(pki.dir).filter((f) => f.endsWith('-key.pem'));
    assert.equal(keyFiles.length, 7); // the CA and six certificates
  });

  test('api-keys.json holds the two keys hashed, never in clear, mode 0600', () => {
    const text = readFileSync(pki.apiKeysFile, 'utf8');
    assert.ok(!text.includes(pki.apiKey) && !text.includes(pki.adminKey));
    assert.equal(statSync(pki.apiKeysFile).mode & 0o777, 0o600);
    const store = loadApiKeyStore(pki.apiKeysFile);
    assert.equal(store.verify(pki.apiKey).role, 'client');
    assert.equal(store.verify(pki.adminKey).role, 'admin');
  });

  test("cluster.json's security block names files that exist; the file is 0600 since it holds the keys", () => {
    const file: ClusterFile = { coordinator: '127.0.0.1:1', etcd: etcd.url, workers: [], coordinatorPid: 0, etcdPid: etcd.pid, modelDir: '/m', security: clusterSecurity(pki) };
    writeClusterFile(stateDir, file);
    const read = readClusterFile(stateDir);
    assert.deepEqual(read.security, { ca: pki.client.ca, clientCert: pki.client.cert, clientKey: pki.client.key, apiKey: pki.apiKey, adminKey: pki.adminKey });
    for (const path of [read.security!.ca, read.security!.clientCert, read.security!.clientKey]) assert.ok(existsSync(path), path);
    assert.equal(statSync(join(stateDir, 'cluster.json')).mode & 0o777, 0o600);
    assert.equal(clusterAccess(read, 'admin')?.apiKey, pki.adminKey);
    assert.equal(clusterAccess(read, 'client')?.apiKey, pki.apiKey);
  });

  test('etcd serves https only and refuses a client without a certificate or with one from another CA', async () => {
    assert.match(etcd.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const noCert = new Etcd3({ ...etcdClientOptions({ hosts: etcd.url, callTimeoutMs: CALL_TIMEOUT_MS }), credentials: { rootCertificate: readFileSync(pki.client.ca) } });
    const plaintext = new Etcd3(etcdClientOptions({ hosts: etcd.url.replace('https:', 'http:'), callTimeoutMs: CALL_TIMEOUT_MS }));
    clients.push(noCert, plaintext);
    const foreign = open({ ...(await other.issue('worker', 'w1')), ca: pki.client.ca });
    await refusedBy(noCert.get(keys.plan()).string(), 'no client certificate', unreachable);
    await refusedBy(plaintext.get(keys.plan()).string(), 'plaintext', unreachable);
    await refusedBy(foreign.get(keys.plan()).string(), "a certificate from another CA (with the worker-w1 CN)", unreachable);
  });

  test('a worker writes its own member key, not the plan nor another worker\'s member key', async () => {
    const w1 = open(pki.workers.get('w1')!);
    await w1.put(keys.member(workerId('w1'))).value('{}');
    assert.equal(await w1.get(keys.member(workerId('w1'))).string(), '{}');
    await refusedBy(w1.put(keys.plan()).value('{}').exec(), 'w1 writing the plan', denied);
    await refusedBy(w1.put(keys.planEpoch()).value('9').exec(), 'w1 writing the plan epoch', denied);
    await refusedBy(w1.put(keys.member(workerId('w2'))).value('{}').exec(), 'w1 writing members/w2', denied);
    await refusedBy(w1.put(`${keys.electionKeysPrefix()}forged`).value('x').exec(), 'w1 writing an election key', denied);
  });

  test('the coordinator writes the plan; the client certificate may do nothing in etcd', async () => {
    const coordinator = open(pki.coordinator);
    await coordinator.put(keys.plan()).value('{"epoch":1}');
    await refusedBy(coordinator.put(keys.member(workerId('w1'))).value('{}').exec(), 'the coordinator writing members/w1', denied);
    const client = open(pki.client);
    await refusedBy(client.get(keys.plan()).string(), 'the client certificate reading the plan', denied);
  });

  test('a second up on the same state dir keeps the CA, replaces the API keys and re-applies RBAC', async () => {
    const caBefore = readFileSync(join(pki.dir, 'ca.pem'), 'utf8');
    const again = await createLocalPki({ stateDir, workerIds: ['w1', 'w2', 'w3'] });
    assert.equal(readFileSync(join(again.dir, 'ca.pem'), 'utf8'), caBefore);
    assert.notEqual(again.apiKey, pki.apiKey);
    const store = loadApiKeyStore(again.apiKeysFile);
    assert.throws(() => store.verify(pki.apiKey), (err: unknown) => err instanceof BoraError && err.code === 'UNAUTHENTICATED');
    await applyLocalRbac(etcd.url, again); // auth is already on: this goes through the admin certificate's root role
    const w3 = open(again.workers.get('w3')!);
    await w3.put(keys.member(workerId('w3'))).value('{}');
    await refusedBy(w3.put(keys.member(workerId('w1'))).value('{}').exec(), 'w3 writing members/w1', denied);
  });
});

describe('bora up, secure: the whole cluster through the CLI', () => {
  test('status, generate and drain work with --state-dir; a plaintext client is refused', async (t) => {
    const cluster = await startCluster(t, fixtureDir('tiny-mistral'), 2, ['--secure']);
    const { security } = cluster.file;
    assert.ok(security !== undefined, 'cluster.json has a security block');
    assert.match(cluster.file.etcd, /^https:/);
    for (const path of [security.ca, security.clientCert, security.clientKey]) assert.ok(existsSync(path), path);
    assert.equal(statSync(join(cluster.stateDir, 'cluster.json')).mode & 0o777, 0o600);

    const cli = (...args: string[]) => spawnSync(process.execPath, [boraBin(), ...args], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, BORA_API_KEY: '' } });
    const status = cli('status', '--state-dir', cluster.stateDir);
    assert.equal(status.status, 0, status.stderr);
    assert.ok((JSON.parse(status.stdout) as { planEpoch: number }).planEpoch > 0);
    const generated = cli('generate', '--state-dir', cluster.stateDir, '--prompt-ids', '1,415,5565', '--max-tokens', '4', '--ignore-eos', '--json');
    assert.equal(generated.status, 0, generated.stderr);
    assert.equal((JSON.parse(generated.stdout) as { tokens: number[] }).tokens.length, 4);
    assert.equal((await generateOn(cluster.file.coordinator, greedyIds([1, 415], 3), 60_000, cluster.access)).tokens.length, 3);

    const plaintext = await fetchStatus(cluster.file.coordinator, 3_000).then(() => undefined, (e: unknown) => e);
    assert.ok(plaintext instanceof BoraError, 'a plaintext status call was answered');
    const noKey = await fetchStatus(cluster.file.coordinator, 3_000, { tls: { ca: security.ca } }).then(() => undefined, (e: unknown) => e);
    assert.ok(noKey instanceof BoraError && noKey.code === 'UNAUTHENTICATED', String(noKey));
    const wrongRole = cli('drain', '--state-dir', cluster.stateDir, '--api-key', security.apiKey, 'w2');
    assert.notEqual(wrongRole.status, 0, 'a client key drained a worker');
    const drained = cli('drain', '--state-dir', cluster.stateDir, 'w2');
    assert.equal(drained.status, 0, drained.stderr);
  });
});
