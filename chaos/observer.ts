/**
 * What the harness sees of the cluster while a scenario runs, from the root namespace, sampled
 * on the run's clock:
 * - each coordinator's Status (plan epoch, ranges, serving) every STATUS_INTERVAL_MS; polls
 *   overlap, so one slow reply (a blackholed worker makes Status wait up to its 1 s deadline)
 *   does not blind the observer for that long;
 * - each worker's own Worker.Status (serving flag, epoch, range) every WORKER_INTERVAL_MS: the
 *   ground truth for "at most one serving owner per layer range";
 * - on a secure cluster, Status goes with the admin API key and Worker.Status and the etcd watch
 *   with the admin certificate (cluster.ts), as an operator's tools would;
 * - each node's Prometheus metrics (frames computed and rejected, queue depth) and resident memory;
 * - every change under the cluster's etcd prefix (members and their leases, plans and their
 *   epochs), followed with the product's own list-then-watch (SyncedWatch), which survives
 *   etcd restarts by re-listing; changes it could not see while etcd was down appear as the
 *   difference between two listings, stamped when the second listing arrived.
 */
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import type { Etcd3 } from 'etcd3';
import { clientChannelCredentials } from '../cli/client-credentials';
import { DEFAULT_PREFIX } from '../common/cluster/etcd-keys';
import { decodePlan, type Plan } from '../common/cluster/plan';
import { SyncedWatch, type KeyState } from '../common/cluster/synced-watch';
import type { ClusterStatus, WorkerStatusReply } from '../common/wire/messages';
import { boraProto, type InferenceClient, type WorkerClient } from '../common/wire/proto';
import type { ChaosCluster } from './cluster';
import type { Timeline } from './timeline';
import { silentLogger } from '../common/logging/logger';

export const STATUS_INTERVAL_MS = 200;
const WORKER_INTERVAL_MS = 200;
const METRICS_INTERVAL_MS = 500;
const RSS_INTERVAL_MS = 500;
const CALL_TIMEOUT_MS = 1500;
const MAX_IN_FLIGHT = 6;
/** Reconnect quickly to a node that comes back (grpc-js would back off up to 120 s). */
const CLIENT_OPTIONS: grpc.ChannelOptions = { 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 500 };

export interface StatusSample {
  readonly sentAtMs: number;
  readonly atMs: number;
  readonly coordinator: string;
  readonly status?: ClusterStatus;
  readonly error?: string;
}

export interface WorkerSample {
  readonly sentAtMs: number;
  readonly atMs: number;
  readonly worker: string;
  readonly reply?: WorkerStatusReply;
  readonly error?: string;
}

export interface MetricsSample {
  readonly atMs: number;
  readonly node: string;
  /** Selected series, summed over their labels except `reason`, e.g. "bora_frames_rejected_total{reason=stale_epoch}". */
  readonly values: ReadonlyMap<string, number>;
}

export interface RssSample {
  readonly atMs: number;
  readonly node: string;
  readonly rssBytes: number;
}

export type EtcdEvent =
  | { readonly atMs: number; readonly type: 'put'; readonly key: string; readonly leaseId: string; readonly modRevision: number; readonly plan?: Plan }
  | { readonly atMs: number; readonly type: 'delete'; readonly key: string };

const SERIES = ['bora_stage_forward_seconds_count', 'bora_frames_rejected_total', 'bora_stage_queue_depth', 'bora_lease_serving', 'bora_plan_epoch'];


export class Observer {
  readonly statuses: StatusSample[] = [];
  readonly workers: WorkerSample[] = [];
  readonly metrics: MetricsSample[] = [];
  readonly rss: RssSample[] = [];
  readonly etcd: EtcdEvent[] = [];
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly inFlight = new Map<string, number>();
  private readonly statusClients = new Map<string, InferenceClient>();
  private readonly workerClients = new Map<string, WorkerClient>();
  private etcdClient: Etcd3 | undefined;
  private watch: SyncedWatch | undefined;
  private readonly held = new Map<string, KeyState>();

  constructor(
    private readonly cluster: ChaosCluster,
    private readonly timeline: Timeline,
  ) {}

  async start(): Promise<void> {
    this.etcdClient = this.cluster.etcdClient();
    this.watch = new SyncedWatch({
      client: this.etcdClient,
      range: { prefix: `${DEFAULT_PREFIX}/` },
      onSnapshot: (kvs) => this.onSnapshot(kvs),
      onChange: (change) => (change.type === 'put' ? this.onPut(change.kv) : this.onDelete(change.key)),
      log: silentLogger(),
    });
    await this.watch.start();
    this.every(STATUS_INTERVAL_MS, () => this.cluster.coordinatorNames().forEach((name) => this.pollStatus(name)));
    this.every(WORKER_INTERVAL_MS, () => this.cluster.workerNames().forEach((name) => this.pollWorker(name)));
    this.every(METRICS_INTERVAL_MS, () => [...this.cluster.coordinatorNames(), ...this.cluster.workerNames()].forEach((name) => void this.scrape(name)));
    this.every(RSS_INTERVAL_MS, () => this.sampleRss());
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    await this.watch?.close().catch(() => undefined);
    this.etcdClient?.close();
    for (const c of [...this.statusClients.values(), ...this.workerClients.values()]) c.close();
  }

  /** The plan of every epoch seen, by epoch. */
  plans(): Map<number, Plan> {
    const plans = new Map<number, Plan>();
    for (const e of this.etcd) if (e.type === 'put' && e.plan !== undefined) plans.set(e.plan.epoch, e.plan);
    return plans;
  }

  private every(intervalMs: number, fn: () => void): void {
    const timer = setInterval(fn, intervalMs);
    timer.unref();
    this.timers.push(timer);
  }

  /** Runs `call` unless MAX_IN_FLIGHT calls for `key` are already waiting. */
  private bounded(key: string, call: (done: () => void) => void): void {
    const n = this.inFlight.get(key) ?? 0;
    if (n >= MAX_IN_FLIGHT) return;
    this.inFlight.set(key, n + 1);
    call(() => this.inFlight.set(key, (this.inFlight.get(key) ?? 1) - 1));
  }

  private pollStatus(name: string): void {
    const address = this.cluster.apiAddress(name);
    let client = this.statusClients.get(name);
    if (client === undefined) {
      client = new (boraProto().Inference)(address, clientChannelCredentials(this.cluster.adminAccess()), CLIENT_OPTIONS);
      this.statusClients.set(name, client);
    }
    const c = client;
    this.bounded(`status:${name}`, (done) => {
      const sentAtMs = this.timeline.nowMs();
      c.Status({}, { deadline: Date.now() + CALL_TIMEOUT_MS }, (err, reply) => {
        done();
        this.statuses.push({ sentAtMs, atMs: this.timeline.nowMs(), coordinator: name, ...(err ? { error: err.details ?? err.message } : { status: reply! }) });
      });
    });
  }

  private pollWorker(name: string): void {
    let client = this.workerClients.get(name);
    if (client === undefined) {
      const address = this.cluster.apiAddress(name);
      const dial = this.cluster.adminDial(address);
      client = new (boraProto().Worker)(address, dial.credentials, { ...dial.options, ...CLIENT_OPTIONS });
      this.workerClients.set(name, client);
    }
    const c = client;
    this.bounded(`worker:${name}`, (done) => {
      const sentAtMs = this.timeline.nowMs();
      c.Status({}, { deadline: Date.now() + CALL_TIMEOUT_MS }, (err, reply) => {
        done();
        this.workers.push({ sentAtMs, atMs: this.timeline.nowMs(), worker: name, ...(err ? { error: err.details ?? err.message } : { reply: reply! }) });
      });
    });
  }

  private async scrape(name: string): Promise<void> {
    if (!this.cluster.isRunning(name)) return;
    const text = await fetch(this.cluster.metricsUrl(name), { signal: AbortSignal.timeout(CALL_TIMEOUT_MS) })
      .then((r) => (r.ok ? r.text() : undefined))
      .catch(() => undefined);
    if (text !== undefined) this.metrics.push({ atMs: this.timeline.nowMs(), node: name, values: parseSeries(text, SERIES) });
  }

  private sampleRss(): void {
    const atMs = this.timeline.nowMs();
    for (const [node, pid] of this.cluster.pids()) {
      try {
        const kb = Number(/VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);
        if (Number.isFinite(kb)) this.rss.push({ atMs, node, rssBytes: kb * 1024 });
      } catch {
        // exited between listing and reading
      }
    }
  }

  private onSnapshot(kvs: readonly KeyState[]): void {
    const fresh = new Map(kvs.map((kv) => [kv.key, kv]));
    for (const key of [...this.held.keys()]) if (!fresh.has(key)) this.onDelete(key);
    for (const kv of kvs) {
      const old = this.held.get(kv.key);
      if (old === undefined || old.modRevision !== kv.modRevision) this.onPut(kv);
    }
  }

  private onPut(kv: KeyState): void {
    this.held.set(kv.key, kv);
    let plan: Plan | undefined;
    if (kv.key === `${DEFAULT_PREFIX}/plan`) {
      try {
        plan = decodePlan(kv.value.toString());
      } catch {
        plan = undefined;
      }
    }
    this.etcd.push({ atMs: this.timeline.nowMs(), type: 'put', key: kv.key, leaseId: kv.leaseId, modRevision: kv.modRevision, ...(plan === undefined ? {} : { plan }) });
  }

  private onDelete(key: string): void {
    this.held.delete(key);
    this.etcd.push({ atMs: this.timeline.nowMs(), type: 'delete', key });
  }
}

/** Sums each wanted series over its labels, keeping `reason` apart: name or name{reason=R} -> value. */
export function parseSeries(text: string, names: readonly string[]): Map<string, number> {
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (m === null || !names.includes(m[1])) continue;
    const reason = /reason="([^"]*)"/.exec(m[2] ?? '')?.[1];
    const key = reason === undefined ? m[1] : `${m[1]}{reason=${reason}}`;
    values.set(key, (values.get(key) ?? 0) + Number(m[3]));
  }
  return values;
}
