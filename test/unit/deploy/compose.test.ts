/**
 * The deployment files, as far as this machine can test them (there is no Docker engine here, so
 * nothing is built or started): docker-compose.yml is parsed with `yaml` (merge keys applied, as
 * compose does) and
 * - every `bora` command it runs is accepted by the CLI (its flags parsed and validated with
 *   BORA_CHECK_ARGS=1), the services it needs are there, the Dockerfile copies only paths that exist;
 * - the wiring is secure: etcd serves TLS with client certificates and is never published, every
 *   node dials https:// etcd with its own certificate, and the one-shot PKI script, run here for
 *   real, makes exactly the files the services name, with the right identities and the service
 *   names as DNS names, keeping the CA key out of the shared volume;
 * - it is fit to run: every long-running service has a healthcheck (the nodes' one, a `node -e`
 *   fetch of /readyz, is run here against a server that answers 200, then 503, then nothing) and a
 *   restart policy, every dependency waits on a condition that can be met, each worker's
 *   --memory-bytes plus 1 GiB fits its mem_limit and its drain fits stop_grace_period, Prometheus
 *   scrapes exactly the nodes and loads the SLO rules (promtool checks its configuration and the
 *   rules), the metrics ports are published on loopback, and a hub model directory is bind-mounted.
 * Not tested here: the image build, the containers' start, etcd's and Prometheus' healthchecks.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { loadApiKeyStore } from '../../../common/security/api-keys-file';
import { verifyCertificate } from '../../../common/security/pki';
import { repoRoot } from '../../support/checkpoints';
import { boraBin } from '../../support/cluster';

const compose = readFileSync(join(repoRoot(), 'docker-compose.yml'), 'utf8');
const PKI_MOUNT = '/pki';

/** A compose service, as far as these tests read it. */
interface Service {
  readonly image?: string;
  readonly build?: unknown;
  readonly entrypoint?: string[];
  readonly command?: string[];
  readonly restart?: string;
  readonly healthcheck?: { readonly test: string[]; readonly start_period?: string };
  readonly mem_limit?: string;
  readonly stop_grace_period?: string;
  readonly ports?: string[];
  readonly volumes?: string[];
  readonly depends_on?: Record<string, { readonly condition: string }> | string[];
}

/** The services, parsed with `yaml` (merge keys applied, as compose does). */
const services = (parseYaml(compose, { merge: true }) as { services: Record<string, Service> }).services;

/** The names of the services that run Bora's image with a `bora` subcommand (not the pki script). */
function boraServices(): string[] {
  return Object.keys(services).filter((name) => services[name].image === 'bora:latest' && services[name].command !== undefined);
}

/** The `command:` of each bora service. */
function boraCommands(): string[][] {
  return boraServices().map((name) => [...services[name].command!]);
}

/** Compose's `${VAR:-default}` interpolation, with every variable unset. */
function interpolateDefaults(value: string): string {
  return value.replace(/\$\{[A-Za-z_][A-Za-z0-9_]*:-([^}]*)\}/g, '$1');
}

/** The text of one top-level service, up to the next one. */
function serviceBlock(name: string): string {
  const match = new RegExp(`^  ${name}:.*\\n((?:(?: {4}.*)?\\n)*)`, 'm').exec(compose);
  assert.ok(match !== null, `service ${name}`);
  return match[1];
}

/** The etcd service's `command:` block list. */
function etcdCommand(): string[] {
  return [...(services.etcd.command ?? [])];
}

function flagValue(argv: readonly string[], flag: string): string | undefined {
  const i = argv.indexOf(flag);
  return i < 0 ? undefined : argv[i + 1];
}

describe('docker-compose.yml and Dockerfile', () => {
  test('declares the PKI and RBAC steps, etcd, a coordinator, three workers and Prometheus', () => {
    for (const service of ['pki', 'etcd', 'etcd-rbac', 'coordinator', 'worker1', 'worker2', 'worker3', 'prometheus']) {
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

/** Compose's byte values ("3g", "512m"): base 1024, as Docker reads them. */
function composeBytes(value: string): number {
  const m = /^([0-9]+)([bkmg]?)$/i.exec(value);
  assert.ok(m !== null, `a byte value: ${value}`);
  return Number(m[1]) * 1024 ** 'bkmg'.indexOf((m[2] || 'b').toLowerCase());
}

/** Compose's durations ("90s", "1m30s") in milliseconds. */
function composeMs(value: string): number {
  const parts = [...value.matchAll(/([0-9]+)(ms|s|m|h)/g)];
  assert.ok(parts.length > 0 && parts.map((p) => p[0]).join('') === value, `a duration: ${value}`);
  const unit: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  return parts.reduce((sum, p) => sum + Number(p[1]) * unit[p[2]], 0);
}

/** The coordinator and worker services. */
const nodeServices = (): string[] => boraServices().filter((name) => ['coordinator', 'worker'].includes(services[name].command![0]));
const metricsPort = (name: string): number => Number(flagValue(services[name].command!, '--metrics-port'));
const dependencies = (service: Service): Record<string, { readonly condition: string }> => {
  assert.ok(!Array.isArray(service.depends_on), 'depends_on uses conditions (the long syntax)');
  return service.depends_on ?? {};
};

describe('docker-compose.yml fit to run (parsed with yaml; there is no Docker engine here to start it)', () => {
  const oneShots = (): string[] =>
    [...new Set(Object.values(services).flatMap((s) => Object.entries(dependencies(s)).filter(([, d]) => d.condition === 'service_completed_successfully').map(([n]) => n)))].sort();

  test('every long-running service has a healthcheck and restarts unless stopped; the one-shot steps do not restart once done', () => {
    assert.deepEqual(oneShots(), ['etcd-rbac', 'pki']);
    for (const [name, service] of Object.entries(services)) {
      if (oneShots().includes(name)) {
        assert.ok(service.restart === 'no' || service.restart === 'on-failure', `${name}: restart ${service.restart}`);
        continue;
      }
      assert.ok(service.healthcheck !== undefined && service.healthcheck.test.length > 1, `${name} has a healthcheck`);
      assert.equal(service.restart, 'unless-stopped', `${name}: restart policy`);
    }
    assert.deepEqual(nodeServices().sort(), ['coordinator', 'worker1', 'worker2', 'worker3']);
  });

  test('the nodes\' healthchecks GET /readyz on their own metrics port with node (the image has no curl), and fail when it is not 200', async () => {
    for (const name of nodeServices()) {
      const check = services[name].healthcheck!.test;
      assert.deepEqual(check.slice(0, 3), ['CMD', 'node', '-e'], name);
      assert.ok(check[3].includes(`'http://127.0.0.1:${metricsPort(name)}/readyz'`), `${name} probes its --metrics-port ${metricsPort(name)}`);
    }
    // The check itself, run here against a server that answers 200, then 503, then is gone.
    let status = 200;
    const server = createServer((req, res) => {
      res.statusCode = req.url === '/readyz' ? status : 404;
      res.end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const script = services.worker1.healthcheck!.test[3].replace(`:${metricsPort('worker1')}/`, `:${port}/`);
    const run = (): Promise<number | null> =>
      new Promise((resolve) => execFile(process.execPath, ['-e', script], { timeout: 10_000 }, (err) => resolve(err === null ? 0 : ((err as { code?: number }).code ?? null))));
    try {
      assert.equal(await run(), 0, 'ready: healthy');
      status = 503;
      assert.equal(await run(), 1, 'not ready: unhealthy');
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
    assert.equal(await run(), 1, 'no answer: unhealthy');
  });

  test('start order: every dependency has a condition; service_healthy waits only on services with a healthcheck; the workers do not wait for a ready coordinator', () => {
    let healthyWaits = 0;
    for (const [name, service] of Object.entries(services)) {
      for (const [on, { condition }] of Object.entries(dependencies(service))) {
        assert.ok(services[on] !== undefined, `${name} depends on a service that exists: ${on}`);
        assert.ok(['service_started', 'service_healthy', 'service_completed_successfully'].includes(condition), `${name} -> ${on}: ${condition}`);
        if (condition === 'service_healthy') {
          healthyWaits++;
          assert.ok(services[on].healthcheck !== undefined, `${name} waits for ${on} to be healthy, which has a healthcheck`);
        }
      }
    }
    assert.ok(healthyWaits >= 4, 'the nodes and etcd-rbac wait for a healthy etcd');
    // The coordinator is ready only once workers serve its plan: waiting for it would never end.
    for (const name of nodeServices().filter((n) => n.startsWith('worker'))) {
      assert.equal(dependencies(services[name]).coordinator?.condition, 'service_started', name);
      assert.equal(dependencies(services[name]).etcd?.condition, 'service_healthy', name);
    }
  });

  test('memory adds up: each worker\'s --memory-bytes plus 1 GiB for the runtime fits its mem_limit; a drain fits stop_grace_period', () => {
    for (const name of nodeServices()) assert.ok(services[name].mem_limit !== undefined, `${name} has a mem_limit`);
    for (const name of nodeServices().filter((n) => services[n].command![0] === 'worker')) {
      const argv = services[name].command!;
      const budget = Number(flagValue(argv, '--memory-bytes'));
      assert.ok(Number.isSafeInteger(budget) && budget > 0, `${name}: --memory-bytes is given (the default is 80% of the host, whatever the limit)`);
      const limit = composeBytes(services[name].mem_limit!);
      assert.ok(budget + 2 ** 30 <= limit, `${name}: --memory-bytes ${budget} + 1 GiB <= mem_limit ${services[name].mem_limit}`);
      const drainMs = Number(flagValue(argv, '--drain-timeout-ms') ?? 60_000);
      assert.ok(composeMs(services[name].stop_grace_period ?? '10s') >= drainMs + 30_000, `${name}: stop_grace_period covers --drain-timeout-ms ${drainMs} + 30 s`);
    }
    assert.equal(composeBytes('3g'), 3 * 2 ** 30);
    assert.equal(composeMs('1m30s'), 90_000);
  });

  test('Prometheus scrapes every node and loads the SLO rules; promtool accepts its configuration', () => {
    const prometheus = services.prometheus;
    const configFlag = prometheus.command!.find((a) => a.startsWith('--config.file='))!.slice('--config.file='.length);
    const mounts = new Map((prometheus.volumes ?? []).map((v) => v.split(':')).map(([from, to]) => [to, from]));
    const configFile = join(repoRoot(), mounts.get(configFlag)!);
    const config = parseYaml(readFileSync(configFile, 'utf8')) as { rule_files: string[]; scrape_configs: { static_configs: { targets: string[] }[] }[] };
    const targets = config.scrape_configs.flatMap((j) => j.static_configs.flatMap((c) => c.targets)).sort();
    assert.deepEqual(targets, nodeServices().map((n) => `${n}:${metricsPort(n)}`).sort(), 'every node, and only the nodes');
    // The rule files: the glob, in the mounted directory, matches Bora's two rule files.
    assert.equal(config.rule_files.length, 1);
    const [ruleGlob] = config.rule_files;
    const ruleDir = ruleGlob.slice(0, ruleGlob.lastIndexOf('/'));
    assert.equal(mounts.get(ruleDir), './deploy/prometheus');
    const pattern = new RegExp(`^${ruleGlob.slice(ruleDir.length + 1).replace('.', '\\.').replace('*', '.*')}$`);
    assert.deepEqual(readdirSync(join(repoRoot(), 'deploy', 'prometheus')).filter((f) => pattern.test(f)).sort(), ['bora-alerts.yml', 'bora-rules.yml']);
    // promtool checks the configuration and, through it, the rule files (pointed at this checkout).
    const dir = mkdtempSync(join(tmpdir(), 'bora-compose-prom-'));
    try {
      const local = join(dir, 'prometheus.yml');
      writeFileSync(local, readFileSync(configFile, 'utf8').replaceAll(ruleDir, join(repoRoot(), 'deploy', 'prometheus')));
      const run = spawnSync('promtool', ['check', 'config', local], { encoding: 'utf8' });
      if (run.error !== undefined) assert.fail(`promtool cannot run (${run.error.message}): install Debian's prometheus package, as .ci/run does`);
      assert.equal(run.status, 0, `${run.stdout}${run.stderr}`);
      assert.match(`${run.stdout}${run.stderr}`, /SUCCESS: 2 rule files found/);
      assert.equal([...`${run.stdout}`.matchAll(/SUCCESS: \d+ rules found/g)].length, 2, `${run.stdout}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('each node\'s metrics are published on the host\'s loopback, on a port of its own; a hub model directory is bind-mounted read-only', () => {
    const hostPorts: string[] = [];
    for (const name of nodeServices()) {
      const published = (services[name].ports ?? []).filter((p) => p.endsWith(`:${metricsPort(name)}`));
      assert.equal(published.length, 1, `${name} publishes its metrics port`);
      assert.match(published[0], /^127\.0\.0\.1:\d+:\d+$/, `${name}: loopback only (the metrics are not authenticated)`);
      hostPorts.push(published[0].split(':')[1]);
    }
    assert.equal(new Set(hostPorts).size, hostPorts.length, 'distinct host ports');
    const coordinator = services.coordinator;
    assert.ok((coordinator.volumes ?? []).some((v) => /^\$\{BORA_HUB_DIR:-[^}]+\}:\/hub:ro$/.test(v)), 'the hub directory bind mount');
    assert.equal(interpolateDefaults(flagValue(coordinator.command!, '--model')!), '/models/demo');
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
    const local = (arg: string): string => interpolateDefaults(arg).replace(/^\/pki\//, `${pkiDir()}/`).replace(/^\/audit\//, `${dir}/`);
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
