/**
 * The deployment files, as far as this machine can test them (there is no Docker engine here):
 * every `bora` command docker-compose.yml runs is accepted by the CLI (its flags parsed and
 * validated with BORA_CHECK_ARGS=1), the services it needs are there, the Dockerfile copies only
 * paths that exist, and the wiring is secure: etcd serves TLS with client certificates and is never
 * published, every node dials https:// etcd with its own certificate, and the one-shot PKI script,
 * run here for real, makes exactly the files the services name, with the right identities and the
 * service names as DNS names, keeping the CA key out of the shared volume.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadApiKeyStore } from '../../../common/security/api-keys-file';
import { verifyCertificate } from '../../../common/security/pki';
import { repoRoot } from '../../support/checkpoints';
import { boraBin } from '../../support/cluster';

const compose = readFileSync(join(repoRoot(), 'docker-compose.yml'), 'utf8');
const PKI_MOUNT = '/pki';

/** `command: [...]` flow arrays of the bora services (JSON syntax inside YAML), joined across lines. */
function boraCommands(): string[][] {
  const commands: string[][] = [];
  const pattern = /command:\s*(\[[^\]]*\])/g;
  for (let m = pattern.exec(compose); m !== null; m = pattern.exec(compose)) commands.push(JSON.parse(m[1]) as string[]);
  return commands;
}

/** The text of one top-level service, up to the next one. */
function serviceBlock(name: string): string {
  const match = new RegExp(`^  ${name}:.*\\n((?:(?: {4}.*)?\\n)*)`, 'm').exec(compose);
  assert.ok(match !== null, `service ${name}`);
  return match[1];
}

/** The etcd service's `command:` block list. */
function etcdCommand(): string[] {
  return [...serviceBlock('etcd').matchAll(/^ {6}- (\S+)$/gm)].map((m) => m[1]).filter((item) => item === 'etcd' || item.startsWith('--'));
}

function flagValue(argv: readonly string[], flag: string): string | undefined {
  const i = argv.indexOf(flag);
  return i < 0 ? undefined : argv[i + 1];
}

describe('docker-compose.yml and Dockerfile', () => {
  test('declares the PKI and RBAC steps, etcd, a coordinator and three workers', () => {
    for (const service of ['pki', 'etcd', 'etcd-rbac', 'coordinator', 'worker1', 'worker2', 'worker3']) {
      assert.match(compose, new RegExp(`^  ${service}:`, 'm'), `service ${service}`);
    }
  });

  test('a wrong flag in such a command would be caught', () => {
    // The CLI itself must refuse the flag (usage error, exit 2), not fail for another reason
    // such as a missing dist/.
    assert.throws(
      () =>
        execFileSync(process.execPath, [boraBin(), 'worker', '--etcd', 'http://etcd:2379', '--listen', '0.0.0.0:7100', '--no-such-flag'], {
          env: { ...process.env, BORA_CHECK_ARGS: '1' },
          stdio: 'pipe',
        }),
      (err: unknown) => {
        const failed = err as { status?: number | null; stderr?: Buffer };
        assert.match(String(failed.stderr), /^bora: Unknown option '--no-such-flag'$/m);
        assert.equal(failed.status, 2);
        return true;
      },
    );
  });

  test('etcd serves TLS only, requires client certificates from the cluster CA, and is not published', () => {
    const argv = etcdCommand();
    const joined = argv.join(' ');
    assert.doesNotMatch(compose, /http:\/\/etcd/, 'no plaintext etcd URL anywhere');
    assert.doesNotMatch(joined, /http:\/\//);
    for (const flag of ['--listen-client-urls', '--advertise-client-urls', '--listen-peer-urls', '--initial-advertise-peer-urls']) {
      assert.match(joined, new RegExp(`${flag}=https://`), flag);
    }
    for (const flag of ['--client-cert-auth', '--peer-client-cert-auth']) assert.ok(argv.includes(flag), flag);
    const expected: Record<string, string> = {
      '--cert-file': `${PKI_MOUNT}/etcd-etcd.pem`,
      '--key-file': `${PKI_MOUNT}/etcd-etcd-key.pem`,
      '--trusted-ca-file': `${PKI_MOUNT}/ca.pem`,
      '--peer-cert-file': `${PKI_MOUNT}/etcd-etcd.pem`,
      '--peer-key-file': `${PKI_MOUNT}/etcd-etcd-key.pem`,
      '--peer-trusted-ca-file': `${PKI_MOUNT}/ca.pem`,
    };
    for (const [flag, file] of Object.entries(expected)) assert.ok(argv.includes(`${flag}=${file}`), `${flag}=${file}`);
    assert.doesNotMatch(serviceBlock('etcd'), /^ {4}ports:/m, 'etcd publishes no port');
    assert.match(serviceBlock('etcd'), /pki:\/pki:ro/);
  });

  test('every node dials https:// etcd with its own certificate; the coordinator checks API keys', () => {
    const nodes = boraCommands().filter((c) => c[0] === 'worker' || c[0] === 'coordinator');
    assert.equal(nodes.length, 4);
    for (const argv of nodes) {
      const who = argv[0] === 'worker' ? `worker-${flagValue(argv, '--id')}` : 'coordinator-c1';
      assert.equal(flagValue(argv, '--etcd'), 'https://etcd:2379', who);
      assert.equal(flagValue(argv, '--ca'), `${PKI_MOUNT}/ca.pem`, who);
      assert.equal(flagValue(argv, '--cert'), `${PKI_MOUNT}/${who}.pem`, who);
      assert.equal(flagValue(argv, '--key'), `${PKI_MOUNT}/${who}-key.pem`, who);
      assert.ok(flagValue(argv, '--audit-log')?.startsWith('/audit/'), who);
    }
    const coordinator = nodes.find((c) => c[0] === 'coordinator')!;
    assert.equal(flagValue(coordinator, '--api-keys'), `${PKI_MOUNT}/api-keys.json`);
    const rbac = boraCommands().find((c) => c[0] === 'etcd-rbac')!;
    assert.equal(flagValue(rbac, '--workers'), nodes.filter((c) => c[0] === 'worker').map((c) => flagValue(c, '--id')).join(','));
    assert.equal(flagValue(rbac, '--cert'), `${PKI_MOUNT}/admin-ops.pem`);
    assert.equal(flagValue(rbac, '--admins'), 'ops');
  });

  test('only the pki service mounts the CA key; the others mount the certificates read-only', () => {
    const mounts = [...compose.matchAll(/^ {6}- (ca|pki):(\/\S+)$/gm)].map((m) => `${m[1]}:${m[2]}`);
    assert.deepEqual(mounts.filter((m) => m.startsWith('ca:')), ['ca:/ca']);
    assert.match(serviceBlock('pki'), /- ca:\/ca\n/);
    for (const service of ['etcd', 'etcd-rbac', 'coordinator', 'worker1']) assert.match(serviceBlock(service), /- pki:\/pki:ro\n/, service);
  });

  test('the Dockerfile copies only paths that exist and runs the bora CLI', () => {
    const dockerfile = readFileSync(join(repoRoot(), 'Dockerfile'), 'utf8');
    const copies = [...dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) => m[1].split(/\s+/));
    assert.ok(copies.length > 0);
    for (const path of copies) assert.ok(existsSync(join(repoRoot(), path)), `COPY ${path}`);
    assert.ok(copies.includes('scripts'), 'the image carries scripts/compose-pki.sh');
    assert.match(dockerfile, /ENTRYPOINT \["node", "dist\/cli\/bora\.js"\]/);
  });
});

describe('scripts/compose-pki.sh (the pki service), run here', () => {
  let dir: string;
  let output: string;
  const pkiDir = (): string => join(dir, 'pki');
  const run = (): string =>
    execFileSync('sh', [join(repoRoot(), 'scripts', 'compose-pki.sh')], {
      cwd: repoRoot(),
      env: { ...process.env, BORA: `${process.execPath} ${boraBin()}`, CA_DIR: join(dir, 'ca'), PKI_DIR: pkiDir() },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 120_000,
    });

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'bora-compose-pki-'));
    output = run();
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('makes every file the services name, and keeps the CA key out of the shared volume', () => {
    const named = new Set([...compose.matchAll(/\/pki\/([A-Za-z0-9.-]+)/g)].map((m) => m[1]));
    assert.ok(named.size >= 12, [...named].join(' '));
    for (const file of named) assert.ok(existsSync(join(pkiDir(), file)), `${file} is made by the pki service`);
    assert.ok(!readdirSync(pkiDir()).includes('ca-key.pem'));
    assert.ok(existsSync(join(dir, 'ca', 'ca-key.pem')));
  });

  test('every bora command it runs is accepted by the CLI, with the certificates the pki service made', () => {
    const commands = boraCommands();
    assert.deepEqual(commands.map((c) => c[0]).sort(), ['coordinator', 'etcd-rbac', 'worker', 'worker', 'worker']);
    // The services' paths, pointed at what the script wrote here: the nodes read and check their
    // certificate (role and id) even when they only validate their command line.
    const local = (arg: string): string => arg.replace(/^\/pki\//, `${pkiDir()}/`).replace(/^\/audit\//, `${dir}/`);
    for (const command of commands) {
      // The coordinator's --model is a path inside the container; validation does not read it.
      execFileSync(process.execPath, [boraBin(), ...command.map(local)], { env: { ...process.env, BORA_CHECK_ARGS: '1' }, stdio: 'pipe' });
    }
  });

  test('each certificate carries its identity and its service name', () => {
    const ca = readFileSync(join(pkiDir(), 'ca.pem'));
    const expected: [string, string, string, string][] = [
      ['etcd-etcd', 'etcd', 'etcd', 'etcd'],
      ['coordinator-c1', 'coordinator', 'c1', 'coordinator'],
      ['worker-w1', 'worker', 'w1', 'worker1'],
      ['worker-w2', 'worker', 'w2', 'worker2'],
      ['worker-w3', 'worker', 'w3', 'worker3'],
    ];
    for (const [file, role, id, dns] of expected) {
      const pem = readFileSync(join(pkiDir(), `${file}.pem`));
      assert.deepEqual(verifyCertificate(pem, ca), { role, id }, file);
      assert.ok(new X509Certificate(pem).checkHost(dns) !== undefined, `${file} is valid for ${dns}`);
    }
    const coordinator = new X509Certificate(readFileSync(join(pkiDir(), 'coordinator-c1.pem')));
    assert.ok(coordinator.checkHost('localhost') !== undefined && coordinator.checkIP('127.0.0.1') !== undefined, 'the coordinator is reachable from the host');
  });

  test('prints the two API keys once and stores only their hashes; a second run changes nothing', () => {
    const printed = [...output.matchAll(/"key":"(bora_[A-Za-z0-9_-]+)"/g)].map((m) => m[1]);
    assert.equal(printed.length, 2);
    const store = loadApiKeyStore(join(pkiDir(), 'api-keys.json'));
    assert.deepEqual(printed.map((k) => store.verify(k).role), ['client', 'admin']);
    const text = readFileSync(join(pkiDir(), 'api-keys.json'), 'utf8');
    for (const key of printed) assert.ok(!text.includes(key));
    const before = readFileSync(join(pkiDir(), 'worker-w1.pem'), 'utf8');
    assert.match(run(), /nothing to do/);
    assert.equal(readFileSync(join(pkiDir(), 'worker-w1.pem'), 'utf8'), before);
    assert.equal(loadApiKeyStore(join(pkiDir(), 'api-keys.json')).size(), 2);
  });
});
