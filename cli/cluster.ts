/**
 * bora up / down / status / drain: a local cluster on 127.0.0.1, each part its own process: etcd
 * (unless --etcd is given), one coordinator and N workers. `up` returns once the plan is ready and
 * writes STATE/cluster.json (cluster-file.ts); `down` stops everything it started.
 *
 * A secure `up` (security-mode.ts) first creates STATE/pki/ (local-pki.ts: the CA, a certificate
 * per node, admin and client certificates, two API keys), starts etcd with TLS, client
 * certificates and RBAC (local-etcd.ts), and gives every node its certificate, the audit log
 * STATE/audit.log, and the coordinator the API key hashes. `--insecure` is today's plaintext
 * cluster, for development only.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { parseMicroBatches } from '../coordinator/pipeline-depth';
import { InvalidArgumentError, NotFoundError, UnavailableError } from '../common/errors';
import { isGgufPath } from '../common/model/open-model';
import type { ClusterStatus } from '../common/wire/messages';
import { intFlag, parseFlags, requireString } from './args';
import { ACCESS_FLAGS, type AccessRole, resolveAccess } from './client-access';
import type { CoordinatorAccess } from './client-credentials';
import { type ClusterFile, type ClusterSecurity, clusterFilePath, readClusterFile, writeClusterFile } from './cluster-file';
import { drainWorker, fetchStatus } from './inference-client';
import { startLocalEtcd } from './local-etcd';
import { type LocalPki, createLocalPki } from './local-pki';
import { coordinatorSecurityArgs, insecureNodeArgs, workerSecurityArgs } from './node-security-args';
import { freePort, isAlive, spawnDetached, stopProcesses, waitFor } from './processes';
import { SAFETY_FLAGS, safetyArgs, safetyFromFlags } from './safety-flags';
import { INSECURE_WARNING, securityMode } from './security-mode';

export { type ClusterFile, type ClusterSecurity, readClusterFile } from './cluster-file';

const BORA_JS = join(__dirname, 'bora.js');
export const AUDIT_LOG_FILE = 'audit.log';

/** cluster.json's `security` block for a local PKI. */
export function clusterSecurity(pki: LocalPki): ClusterSecurity {
  return { ca: pki.client.ca, clientCert: pki.client.cert, clientKey: pki.client.key, apiKey: pki.apiKey, adminKey: pki.adminKey };
}

/** What a client command presents to the cluster of cluster.json, as `role`, with no flags given. */
export function clusterAccess(file: ClusterFile, role: AccessRole): CoordinatorAccess | undefined {
  return resolveAccess({}, file.security, role, {});
}

const UP_FLAGS = {
  model: { type: 'string' },
  workers: { type: 'string' },
  'state-dir': { type: 'string' },
  etcd: { type: 'string' },
  placement: { type: 'string' },
  replicas: { type: 'string' },
  threads: { type: 'string' },
  'lease-ttl-ms': { type: 'string' },
  'memory-bytes': { type: 'string' },
  'prefix-cache-bytes': { type: 'string' },
  'timeout-ms': { type: 'string' },
  'expert-rebalance-ms': { type: 'string' },
  'micro-batches': { type: 'string' },
  secure: { type: 'boolean' },
  insecure: { type: 'boolean' },
  ...SAFETY_FLAGS,
} as const;

export async function upCommand(argv: string[]): Promise<void> {
  const { values: v } = parseFlags(argv, UP_FLAGS);
  const modelDir = resolve(requireString(v.model, '--model'));
  const stateDir = resolve(requireString(v['state-dir'], '--state-dir'));
  const workerCount = intFlag(v.workers, '--workers', 3);
  // Checked here, passed on to every worker as given (all stages need the same setting).
  if (v['prefix-cache-bytes'] !== undefined) intFlag(v['prefix-cache-bytes'], '--prefix-cache-bytes', 0, { min: 0, max: Number.MAX_SAFE_INTEGER });
  if (workerCount < 1) throw new InvalidArgumentError('--workers must be at least 1');
  const placement = v.placement ?? 'layers';
  if (placement !== 'layers' && placement !== 'experts') throw new InvalidArgumentError(`--placement must be layers or experts, got "${placement}"`);
  if (isGgufPath(modelDir) ? !existsSync(modelDir) : !existsSync(join(modelDir, 'config.json'))) {
    throw new NotFoundError(isGgufPath(modelDir) ? `${modelDir} does not exist` : `${modelDir} holds no config.json`);
  }
  mkdirSync(stateDir, { recursive: true });
  const timeoutMs = intFlag(v['timeout-ms'], '--timeout-ms', 120_000);
  const mode = securityMode(v);
  if (mode === 'insecure') process.stderr.write(`${INSECURE_WARNING}\n`);
  const workerIds = Array.from({ length: workerCount }, (_, i) => `w${i + 1}`);
  const pki = mode === 'secure' ? await createLocalPki({ stateDir, workerIds }) : undefined;
  if (pki !== undefined && v.etcd !== undefined && !v.etcd.startsWith('https://')) {
    throw new InvalidArgumentError(`a secure cluster needs an https:// etcd (got ${v.etcd}); leave out --etcd to have one started, or give --insecure`);
  }
  const auditLog = join(stateDir, AUDIT_LOG_FILE);
  // The safety flags go to the coordinator as given (a bad policy file is refused here first);
  // its incidents are audited, to STATE/audit.log even in an insecure cluster.
  const safety = safetyFromFlags(v) === undefined ? [] : [...safetyArgs(v), ...(pki === undefined ? ['--audit-log', auditLog] : [])];

  // With --etcd, that etcd's TLS, users and roles are its operator's business (see `bora etcd-rbac`).
  const etcd = v.etcd !== undefined ? { url: v.etcd, pid: null } : await startLocalEtcd(stateDir, pki);
  const coordinatorAddress = `127.0.0.1:${await freePort()}`;
  const httpAddress = `127.0.0.1:${await freePort()}`;
  const common = ['--etcd', etcd.url];
  const ttl = v['lease-ttl-ms'] === undefined ? [] : ['--lease-ttl-ms', v['lease-ttl-ms']];
  const rebalance = v['expert-rebalance-ms'] === undefined ? [] : ['--expert-rebalance-ms', v['expert-rebalance-ms']];
  const microBatches = parseMicroBatches(v['micro-batches']); // checked here, passed on as given
  const microBatchArgs = v['micro-batches'] === undefined ? [] : ['--micro-batches', String(microBatches)];
  // Metrics ports are chosen here so that cluster.json can say where each /metrics is.
  const coordinatorMetricsPort = await freePort();
  const coordinatorPid = spawnDetached(
    process.execPath,
    [BORA_JS, 'coordinator', ...common, '--listen', coordinatorAddress, '--http-listen', httpAddress, '--model', modelDir, '--placement', placement, '--replicas', v.replicas ?? '1', '--metrics-port', String(coordinatorMetricsPort), ...ttl, ...rebalance, ...microBatchArgs, ...safety, ...(pki === undefined ? insecureNodeArgs() : coordinatorSecurityArgs(pki, auditLog))],
    join(stateDir, 'coordinator.log'),
  );
  // Every process runs on this machine, so by default (--micro-batches auto) one micro-batch is in
  // flight and one stage computes at a time: each worker may use all the cores. With more
  // micro-batches the stages overlap and share them: give each worker fewer threads.
  const threads = v.threads ?? String(microBatches === 'auto' || microBatches === 1 ? availableParallelism() : 1);
  const workerPids = new Map<string, number>();
  const workerMetrics = new Map<string, string>();
  for (const id of workerIds) {
    const metricsPort = await freePort();
    workerMetrics.set(id, `127.0.0.1:${metricsPort}`);
    const args = [BORA_JS, 'worker', ...common, '--id', id, '--listen', '127.0.0.1:0', '--models-dir', dirname(modelDir), '--threads', threads, '--metrics-port', String(metricsPort), ...ttl];
    if (v['memory-bytes'] !== undefined) args.push('--memory-bytes', v['memory-bytes']);
    if (v['prefix-cache-bytes'] !== undefined) args.push('--prefix-cache-bytes', v['prefix-cache-bytes']);
    args.push(...(pki === undefined ? insecureNodeArgs() : workerSecurityArgs(pki, id, auditLog)));
    workerPids.set(id, spawnDetached(process.execPath, args, join(stateDir, `${id}.log`)));
  }
  const partial: ClusterFile = {
    coordinator: coordinatorAddress,
    http: httpAddress,
    etcd: etcd.url,
    // Until the plan is ready only the pids are known; `down` needs nothing more.
    workers: [...workerPids].map(([id, pid]) => ({ id, pid, address: '', layers: null })),
    coordinatorPid,
    coordinatorMetrics: `127.0.0.1:${coordinatorMetricsPort}`,
    etcdPid: etcd.pid,
    modelDir,
    ...(pki === undefined ? {} : { security: clusterSecurity(pki) }),
  };
  writeClusterFile(stateDir, partial); // so that `down` works even if `up` fails below

  const adminAccess = clusterAccess(partial, 'admin');
  const nodes: [string, number][] = [['coordinator', coordinatorPid], ...workerPids];
  const outcome = await waitFor(`the plan to be ready on ${workerCount} workers (see ${stateDir}/*.log)`, timeoutMs, async () => {
    // A node that refused its command line or crashed will not come back: say so now, not at the deadline.
    const exited = nodes.find(([, pid]) => !isAlive(pid));
    if (exited !== undefined) return { exited: exited[0] };
    const s = await fetchStatus(coordinatorAddress, undefined, adminAccess);
    const ready = s.serving && s.settled && s.planEpoch > 0 && s.workers.length >= workerCount && s.workers.every((w) => w.ready);
    return ready ? { status: s } : undefined;
  });
  const { status, exited } = outcome;
  if (status === undefined) {
    const log = join(stateDir, `${exited}.log`);
    const last = readFileSync(log, 'utf8').trim().split('\n').at(-1) ?? '';
    throw new UnavailableError(`${exited} exited while the cluster started (${log}: ${last}); \`bora down --state-dir ${stateDir}\` stops the rest`);
  }
  const file: ClusterFile = { ...partial, workers: workersOf(status, workerPids, workerMetrics) };
  writeClusterFile(stateDir, file);
  process.stdout.write(`${JSON.stringify({ coordinator: file.coordinator, http: file.http, etcd: file.etcd, planEpoch: status.planEpoch, workers: file.workers.length, model: basename(modelDir), secure: pki !== undefined })}\n`);
}

function workersOf(status: ClusterStatus, pids: ReadonlyMap<string, number>, metrics: ReadonlyMap<string, string>): ClusterFile['workers'] {
  return status.workers.map((w) => ({
    id: w.id,
    pid: pids.get(w.id) ?? -1,
    address: w.address,
    ...(metrics.has(w.id) ? { metrics: metrics.get(w.id) } : {}),
    layers: w.layerEnd > w.layerStart ? [w.layerStart, w.layerEnd] : null,
    ...(w.experts.length > 0 ? { experts: w.experts.map((e) => ({ layer: e.layer, experts: [...e.experts] })) } : {}),
  }));
}

export async function downCommand(argv: string[]): Promise<void> {
  const { values: v } = parseFlags(argv, { 'state-dir': { type: 'string' } } as const);
  const stateDir = resolve(requireString(v['state-dir'], '--state-dir'));
  const file = readClusterFile(stateDir);
  // The coordinator first: it resigns its leadership, so the workers, finding no leader to drain
  // them, stop at once instead of each asking for a plan without itself (a worker's SIGTERM is a
  // graceful drain). Then the workers, and etcd last, so no node sees it vanish under them.
  await stopProcesses([file.coordinatorPid]);
  await stopProcesses(file.workers.map((w) => w.pid).filter((p) => p > 0));
  if (file.etcdPid !== null) await stopProcesses([file.etcdPid]);
  process.stdout.write(`stopped the cluster of ${stateDir}\n`);
}

export async function statusCommand(argv: string[]): Promise<void> {
  const { values: v } = parseFlags(argv, { 'state-dir': { type: 'string' }, coordinator: { type: 'string' }, ...ACCESS_FLAGS } as const);
  const file = v['state-dir'] === undefined ? undefined : readClusterFile(resolve(v['state-dir']));
  const address = v.coordinator ?? file?.coordinator ?? requireString(undefined, '--state-dir or --coordinator');
  const access = resolveAccess(v, file?.security, 'admin');
  process.stdout.write(`${JSON.stringify(await fetchStatus(address, undefined, access), null, 2)}\n`);
}

/** bora drain --state-dir D WORKER_ID: move the worker's layers away, then stop it. */
export async function drainCommand(argv: string[]): Promise<void> {
  const { values: v, positionals } = parseFlags(argv, { 'state-dir': { type: 'string' }, 'keep-running': { type: 'boolean' }, ...ACCESS_FLAGS } as const, true);
  const stateDir = resolve(requireString(v['state-dir'], '--state-dir'));
  const workerId = positionals[0];
  if (workerId === undefined || positionals.length > 1) throw new InvalidArgumentError('usage: bora drain --state-dir D WORKER_ID');
  const file = readClusterFile(stateDir);
  const worker = file.workers.find((w) => w.id === workerId);
  if (worker === undefined) throw new NotFoundError(`no worker "${workerId}" in ${clusterFilePath(stateDir)}`);
  const epoch = await drainWorker(file.coordinator, workerId, undefined, resolveAccess(v, file.security, 'admin'));
  if (v['keep-running'] !== true && worker.pid > 0) await stopProcesses([worker.pid]);
  const remaining = file.workers.filter((w) => w.id !== workerId || v['keep-running'] === true);
  writeClusterFile(stateDir, { ...file, workers: remaining });
  process.stdout.write(`${JSON.stringify({ drained: workerId, planEpoch: epoch, stopped: v['keep-running'] !== true })}\n`);
}
