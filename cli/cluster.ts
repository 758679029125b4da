/**
 * bora up / down / status: a local cluster on 127.0.0.1, each part its own process: etcd (unless
 * --etcd is given), one coordinator and N workers. `up` returns once the plan is ready and writes
 * STATE/cluster.json; `down` stops everything it started.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { parseMicroBatches } from '../coordinator/pipeline-depth';
import { InvalidArgumentError, NotFoundError } from '../common/errors';
import type { ClusterStatus } from '../common/wire/messages';
import { intFlag, parseFlags, requireString } from './args';
import { drainWorker, fetchStatus } from './inference-client';
import { findEtcd, freePort, spawnDetached, stopProcesses, waitFor } from './processes';

/** The contract of STATE/cluster.json (tests and operators read it). */
export interface ClusterFile {
  readonly coordinator: string;
  readonly etcd: string;
  readonly workers: {
    id: string;
    pid: number;
    address: string;
    /** host:port of the worker's Prometheus /metrics. */
    metrics?: string;
    layers: [number, number] | null;
    /** With --placement experts: the experts this worker holds, per layer. */
    experts?: { layer: number; experts: number[] }[];
  }[];
  readonly coordinatorPid: number;
  /** host:port of the coordinator's Prometheus /metrics. */
  readonly coordinatorMetrics?: string;
  readonly etcdPid: number | null;
  readonly modelDir: string;
}

const BORA_JS = join(__dirname, 'bora.js');

function clusterFilePath(stateDir: string): string {
  return join(stateDir, 'cluster.json');
}

export function readClusterFile(stateDir: string): ClusterFile {
  const path = clusterFilePath(stateDir);
  if (!existsSync(path)) throw new NotFoundError(`${path} does not exist: no cluster was started with --state-dir ${stateDir}`);
  return JSON.parse(readFileSync(path, 'utf8')) as ClusterFile;
}

async function startEtcd(stateDir: string): Promise<{ url: string; pid: number }> {
  const binary = findEtcd();
  const clientPort = await freePort();
  const peerPort = await freePort();
  const url = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const pid = spawnDetached(
    binary,
    [
      '--name', 'bora', '--data-dir', join(stateDir, 'etcd-data'),
      '--listen-client-urls', url, '--advertise-client-urls', url,
      '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
      '--initial-cluster', `bora=${peer}`,
    ],
    join(stateDir, 'etcd.log'),
  );
  await waitFor('etcd to answer', 20_000, async () => {
    const response = await fetch(`${url}/health`).catch(() => undefined);
    return response?.ok === true ? true : undefined;
  });
  return { url, pid };
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
  'timeout-ms': { type: 'string' },
  'expert-rebalance-ms': { type: 'string' },
  'micro-batches': { type: 'string' },
} as const;

export async function upCommand(argv: string[]): Promise<void> {
  const { values: v } = parseFlags(argv, UP_FLAGS);
  const modelDir = resolve(requireString(v.model, '--model'));
  const stateDir = resolve(requireString(v['state-dir'], '--state-dir'));
  const workerCount = intFlag(v.workers, '--workers', 3);
  if (workerCount < 1) throw new InvalidArgumentError('--workers must be at least 1');
  const placement = v.placement ?? 'layers';
  if (placement !== 'layers' && placement !== 'experts') throw new InvalidArgumentError(`--placement must be layers or experts, got "${placement}"`);
  if (!existsSync(join(modelDir, 'config.json'))) throw new NotFoundError(`${modelDir} holds no config.json`);
  mkdirSync(stateDir, { recursive: true });
  const timeoutMs = intFlag(v['timeout-ms'], '--timeout-ms', 120_000);

  const etcd = v.etcd !== undefined ? { url: v.etcd, pid: null } : await startEtcd(stateDir);
  const coordinatorAddress = `127.0.0.1:${await freePort()}`;
  const common = ['--etcd', etcd.url];
  const ttl = v['lease-ttl-ms'] === undefined ? [] : ['--lease-ttl-ms', v['lease-ttl-ms']];
  const rebalance = v['expert-rebalance-ms'] === undefined ? [] : ['--expert-rebalance-ms', v['expert-rebalance-ms']];
  const microBatches = parseMicroBatches(v['micro-batches']); // checked here, passed on as given
  const microBatchArgs = v['micro-batches'] === undefined ? [] : ['--micro-batches', String(microBatches)];
  // Metrics ports are chosen here so that cluster.json can say where each /metrics is.
  const coordinatorMetricsPort = await freePort();
  const coordinatorPid = spawnDetached(
    process.execPath,
    [BORA_JS, 'coordinator', ...common, '--listen', coordinatorAddress, '--model', modelDir, '--placement', placement, '--replicas', v.replicas ?? '1', '--metrics-port', String(coordinatorMetricsPort), ...ttl, ...rebalance, ...microBatchArgs],
    join(stateDir, 'coordinator.log'),
  );
  // Every process runs on this machine, so by default (--micro-batches auto) one micro-batch is in
  // flight and one stage computes at a time: each worker may use all the cores. With more
  // micro-batches the stages overlap and share them: give each worker fewer threads.
  const threads = v.threads ?? String(microBatches === 'auto' || microBatches === 1 ? availableParallelism() : 1);
  const workerPids = new Map<string, number>();
  const workerMetrics = new Map<string, string>();
  for (let i = 1; i <= workerCount; i++) {
    const id = `w${i}`;
    const metricsPort = await freePort();
    workerMetrics.set(id, `127.0.0.1:${metricsPort}`);
    const args = [BORA_JS, 'worker', ...common, '--id', id, '--listen', '127.0.0.1:0', '--models-dir', dirname(modelDir), '--threads', threads, '--metrics-port', String(metricsPort), ...ttl];
    if (v['memory-bytes'] !== undefined) args.push('--memory-bytes', v['memory-bytes']);
    workerPids.set(id, spawnDetached(process.execPath, args, join(stateDir, `${id}.log`)));
  }
  const partial: ClusterFile = {
    coordinator: coordinatorAddress,
    etcd: etcd.url,
    // Until the plan is ready only the pids are known; `down` needs nothing more.
    workers: [...workerPids].map(([id, pid]) => ({ id, pid, address: '', layers: null })),
    coordinatorPid,
    coordinatorMetrics: `127.0.0.1:${coordinatorMetricsPort}`,
    etcdPid: etcd.pid,
    modelDir,
  };
  writeFileSync(clusterFilePath(stateDir), JSON.stringify(partial, null, 2)); // so that `down` works even if `up` fails below

  const status = await waitFor(`the plan to be ready on ${workerCount} workers (see ${stateDir}/*.log)`, timeoutMs, async () => {
    const s = await fetchStatus(coordinatorAddress);
    const ready = s.serving && s.settled && s.planEpoch > 0 && s.workers.length >= workerCount && s.workers.every((w) => w.ready);
    return ready ? s : undefined;
  });
  const file: ClusterFile = { ...partial, workers: workersOf(status, workerPids, workerMetrics) };
  writeFileSync(clusterFilePath(stateDir), JSON.stringify(file, null, 2));
  process.stdout.write(`${JSON.stringify({ coordinator: file.coordinator, etcd: file.etcd, planEpoch: status.planEpoch, workers: file.workers.length, model: basename(modelDir) })}\n`);
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
  // Workers and coordinator first, so they do not see etcd vanish under them; etcd last.
  await stopProcesses([...file.workers.map((w) => w.pid).filter((p) => p > 0), file.coordinatorPid]);
  if (file.etcdPid !== null) await stopProcesses([file.etcdPid]);
  process.stdout.write(`stopped the cluster of ${stateDir}\n`);
}

export async function statusCommand(argv: string[]): Promise<void> {
  const { values: v } = parseFlags(argv, { 'state-dir': { type: 'string' }, coordinator: { type: 'string' } } as const);
  const address = v.coordinator ?? readClusterFile(resolve(requireString(v['state-dir'], '--state-dir or --coordinator'))).coordinator;
  process.stdout.write(`${JSON.stringify(await fetchStatus(address), null, 2)}\n`);
}

/** bora drain --state-dir D WORKER_ID: move the worker's layers away, then stop it. */
export async function drainCommand(argv: string[]): Promise<void> {
  const { values: v, positionals } = parseFlags(argv, { 'state-dir': { type: 'string' }, 'keep-running': { type: 'boolean' } } as const, true);
  const stateDir = resolve(requireString(v['state-dir'], '--state-dir'));
  const workerId = positionals[0];
  if (workerId === undefined || positionals.length > 1) throw new InvalidArgumentError('usage: bora drain --state-dir D WORKER_ID');
  const file = readClusterFile(stateDir);
  const worker = file.workers.find((w) => w.id === workerId);
  if (worker === undefined) throw new NotFoundError(`no worker "${workerId}" in ${clusterFilePath(stateDir)}`);
  const epoch = await drainWorker(file.coordinator, workerId);
  if (v['keep-running'] !== true && worker.pid > 0) await stopProcesses([worker.pid]);
  const remaining = file.workers.filter((w) => w.id !== workerId || v['keep-running'] === true);
  writeFileSync(clusterFilePath(stateDir), JSON.stringify({ ...file, workers: remaining }, null, 2));
  process.stdout.write(`${JSON.stringify({ drained: workerId, planEpoch: epoch, stopped: v['keep-running'] !== true })}\n`);
}
