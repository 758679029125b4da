/**
 * The cluster under test: etcd, coordinators and workers, each a separate process started inside
 * its node's network namespace with `ip netns exec NETNS node dist/cli/bora.js ...` (ip execs the
 * command, so the pid the harness holds is the node process itself and signals reach it).
 * Each process's output goes, line by line and stamped with the run's clock, to
 * RUN_DIR/logs/<node>.log; an exit the harness did not cause is recorded on the timeline.
 *
 * A cluster is plaintext, said explicitly to the nodes (insecureNodeArgs), unless its spec asks
 * for `secure`: then start() first makes the run's PKI (chaos-pki.ts), etcd serves TLS with
 * client certificates and RBAC (as `bora up` does), every node gets its certificate and an audit
 * log of its own (RUN_DIR/audit/<node>.log), the coordinators the API key hashes. The harness's
 * clients then ask the cluster for their credentials: adminAccess() and clientAccess() for the
 * client API, adminDial() for a worker's port, etcdClient() for etcd.
 *
 * A `proxied` cluster puts a fault proxy (fault-proxy.ts, in the harness process) in front of every
 * node's port, on an extra bridge address of its own: nodes reach etcd through etcd's proxy, and
 * coordinators and workers advertise their proxy's address, so every data-plane connection
 * (coordinator -> stage, stage -> stage, Results back) and every client call (clientAddresses())
 * crosses the proxy of the node it goes to. The harness's own observer and etcd watch dial the
 * nodes directly, so what they measure is not delayed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { setPriority } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Etcd3 } from 'etcd3';
import type { CoordinatorAccess } from '../cli/client-credentials';
import { fetchStatus } from '../cli/inference-client';
import { tlsHealthy } from '../cli/local-etcd';
import { insecureNodeArgs, nodeTlsArgs } from '../cli/node-security-args';
import { findEtcd } from '../cli/processes';
import { createEtcdClient, EtcdKeys } from '../common/cluster/etcd-keys';
import { applyEtcdRbac, etcdRbacPlan } from '../common/security/etcd-rbac';
import { etcdTlsClientOptions, etcdTlsFlags } from '../common/security/etcd-tls';
import { dialNode, INSECURE, tlsNodeSecurity, type NodeDial, type NodeSecurity } from '../common/security/node-security';
import type { ClusterStatus } from '../common/wire/messages';
import { CHAOS_ID, createChaosPki, DEFAULT_CLIENT_KEY, type ChaosPki } from './chaos-pki';
import { FaultProxy } from './fault-proxy';
import type { NetNode, Topology } from './netns';
import { inNetns, run } from './shell';
import { sleep, type Timeline } from './timeline';
import { seededRandom } from './workload';

export const ETCD_CLIENT_PORT = 2379;
const ETCD_PEER_PORT = 2380;
export const COORDINATOR_PORT = 7000;
export const WORKER_PORT = 7100;
export const METRICS_PORT = 9100;
const STOP_GRACE_MS = 5000;
const NODE_NICE = 0;
/** A coordinator's Status asks every worker with a 1 s deadline: allow for one that does not answer. */
const LEADER_STATUS_TIMEOUT_MS = 2500;

export interface ClusterSpec {
  readonly workers: number;
  readonly coordinators: number;
  /** A model directory; workers get its parent as --models-dir, its basename is the model id. */
  readonly modelDir: string;
  readonly modelsDir: string;
  /** The bora.js the nodes run (a snapshot of the build, see build-snapshot.ts). */
  readonly boraJs: string;
  readonly leaseTtlMs: number;
  /** How long `start()` waits for the first plan to be ready. */
  readonly readyTimeoutMs: number;
  /** Copies of each layer range the coordinator places (2 = a standby replica per range). */
  readonly replicas: number;
  /** The coordinators' --placement (layers by default). */
  readonly placement?: 'layers' | 'experts';
  /** TLS everywhere, API keys, etcd RBAC and audit logs; `clientKeys` client API keys are made. */
  readonly secure?: { readonly clientKeys: number };
  /** Added to every coordinator's command line (e.g. admission limits). */
  readonly coordinatorArgs?: readonly string[];
  /** A fault proxy in front of every node (its delays drawn from `seed`). */
  readonly proxied?: { readonly seed: number };
  /** Each node's veth sends one MTU packet per skb (gso_max_segs 1): packet faults then take single packets. */
  readonly singlePacketSkbs?: boolean;
}

interface Running {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly exited: Promise<void>;
  /** Set when the harness stopped or killed it on purpose. */
  expectedExit: boolean;
}

export class ChaosCluster {
  private readonly running = new Map<string, Running>();
  private readonly logs = new Map<string, WriteStream>();
  private readonly logDir: string;
  /** RUN_DIR: logs/, pki/, audit/ and whatever a scenario keeps of its own. */
  readonly runDir: string;
  private pkiMade: ChaosPki | undefined;
  private adminSecurity: NodeSecurity = INSECURE;
  private rbacApplied = false;
  /** Node -> the fault proxy in front of its port (proxied clusters). */
  private readonly proxies = new Map<string, FaultProxy>();

  constructor(
    private readonly topology: Topology,
    private readonly spec: ClusterSpec,
    private readonly timeline: Timeline,
    runDir: string,
  ) {
    this.runDir = runDir;
    this.logDir = join(runDir, 'logs');
    mkdirSync(this.logDir, { recursive: true });
    topology.addNode('etcd', 'etcd');
    for (let i = 1; i <= spec.coordinators; i++) topology.addNode(`c${i}`, 'coordinator');
    for (let i = 1; i <= spec.workers; i++) topology.addNode(`w${i}`, 'worker');
    if (spec.singlePacketSkbs === true) {
      for (const node of topology.all()) run(inNetns(node.netns, ['ip', 'link', 'set', node.nodeVeth, 'gso_max_segs', '1']));
    }
    if (spec.proxied !== undefined) {
      for (const [i, node] of topology.all().entries()) {
        const port = this.portOf(node);
        const listen = topology.addProxyAddress(node.name);
        this.proxies.set(node.name, new FaultProxy({ host: listen, port }, { host: node.address, port }, seededRandom(spec.proxied.seed + 1000 * (i + 1))));
      }
    }
  }

  private portOf(node: NetNode): number {
    return node.role === 'etcd' ? ETCD_CLIENT_PORT : node.role === 'worker' ? WORKER_PORT : COORDINATOR_PORT;
  }

  /** The fault proxy in front of `name` (throws on a cluster without proxies). */
  proxy(name: string): FaultProxy {
    const proxy = this.proxies.get(name);
    if (proxy === undefined) throw new Error(`${name} has no fault proxy (the scenario's topology is not proxied)`);
    return proxy;
  }

  /** Nodes with a fault proxy in front of them (none unless proxied). */
  proxiedNodes(): string[] {
    return [...this.proxies.keys()];
  }

  /** The address the other nodes use for `name` (what it advertises): its proxy's, or its own. */
  advertisedAddress(name: string): string {
    const proxy = this.proxies.get(name);
    return proxy === undefined ? this.apiAddress(name) : `${proxy.listen.host}:${proxy.listen.port}`;
  }

  /** The etcd URL the nodes are given (through etcd's proxy on a proxied cluster). */
  private get nodeEtcdUrl(): string {
    const proxy = this.proxies.get('etcd');
    return proxy === undefined ? this.etcdUrl : `${this.secure ? 'https' : 'http'}://${proxy.listen.host}:${proxy.listen.port}`;
  }

  /** Where the harness's clients send requests: through the coordinators' proxies on a proxied cluster. */
  clientAddresses(): string[] {
    return this.coordinatorNames().map((n) => this.advertisedAddress(n));
  }

  get secure(): boolean {
    return this.spec.secure !== undefined;
  }

  get etcdUrl(): string {
    return `${this.secure ? 'https' : 'http'}://${this.topology.node('etcd').address}:${ETCD_CLIENT_PORT}`;
  }

  /** The run's certificates and keys; throws on a plaintext cluster or before start(). */
  get pki(): ChaosPki {
    if (this.pkiMade === undefined) throw new Error('this chaos cluster has no PKI (plaintext, or not started)');
    return this.pkiMade;
  }

  /** The harness's own address on the cluster's bridge (where S11's rogue calls from). */
  get harnessAddress(): string {
    return this.topology.gateway;
  }

  /** A node's audit log (secure clusters only). */
  auditLog(name: string): string {
    return join(this.runDir, 'audit', `${name}.log`);
  }

  /** The client API as an admin (Status of every worker; Drain): TLS and the admin key, or plaintext. */
  adminAccess(): CoordinatorAccess | undefined {
    return this.secure ? { tls: { ca: this.pki.caFile }, apiKey: this.pki.adminKey } : undefined;
  }

  /** The client API as the client key `keyName` (default client-1), or plaintext. */
  clientAccess(keyName: string = DEFAULT_CLIENT_KEY): CoordinatorAccess | undefined {
    if (!this.secure) return undefined;
    const apiKey = this.pki.clientKeys.get(keyName);
    if (apiKey === undefined) throw new Error(`no client key ${keyName} was made for this run (have ${[...this.pki.clientKeys.keys()].join(', ')})`);
    return { tls: { ca: this.pki.caFile }, apiKey };
  }

  /** How the harness dials a node's port: with the admin certificate on a secure cluster. */
  adminDial(address: string): NodeDial {
    return dialNode(this.adminSecurity, address);
  }

  /** A new etcd client (the caller closes it): the admin certificate on a secure cluster. */
  etcdClient(): Etcd3 {
    return this.secure ? new Etcd3(etcdTlsClientOptions({ hosts: this.etcdUrl }, this.pki.admin)) : createEtcdClient({ hosts: this.etcdUrl });
  }

  get etcdDataDir(): string {
    return join(this.logDir, '..', 'etcd-data');
  }

  coordinatorNames(): string[] {
    return this.topology.all().filter((n) => n.role === 'coordinator').map((n) => n.name);
  }

  workerNames(): string[] {
    return this.topology.all().filter((n) => n.role === 'worker').map((n) => n.name);
  }

  /** host:port of a coordinator's client API or a worker's data plane. */
  apiAddress(name: string): string {
    const node = this.topology.node(name);
    return `${node.address}:${node.role === 'worker' ? WORKER_PORT : COORDINATOR_PORT}`;
  }

  coordinatorAddresses(): string[] {
    return this.coordinatorNames().map((n) => this.apiAddress(n));
  }

  metricsUrl(name: string): string {
    return `http://${this.topology.node(name).address}:${METRICS_PORT}/metrics`;
  }

  node(name: string): NetNode {
    return this.topology.node(name);
  }

  logFile(name: string): string {
    return join(this.logDir, `${name}.log`);
  }

  pid(name: string): number | undefined {
    return this.running.get(name)?.pid;
  }

  isRunning(name: string): boolean {
    return this.running.has(name);
  }

  /** Names of every process running now, with their pids. */
  pids(): Map<string, number> {
    return new Map([...this.running.entries()].map(([name, r]) => [name, r.pid]));
  }

  async start(): Promise<ClusterStatus> {
    if (this.spec.secure !== undefined && this.pkiMade === undefined) {
      const addresses = (names: string[]): Map<string, string> => new Map(names.map((n) => [n, this.topology.node(n).address]));
      this.pkiMade = await createChaosPki({
        dir: join(this.runDir, 'pki'),
        etcdAddress: this.topology.node('etcd').address,
        coordinators: addresses(this.coordinatorNames()),
        workers: addresses(this.workerNames()),
        clientKeys: this.spec.secure.clientKeys,
      });
      this.adminSecurity = tlsNodeSecurity(this.pkiMade.admin, 'admin');
      mkdirSync(join(this.runDir, 'audit'), { recursive: true });
    }
    for (const proxy of this.proxies.values()) await proxy.start();
    await this.startNode('etcd');
    for (const name of this.coordinatorNames()) await this.startNode(name);
    for (const name of this.workerNames()) await this.startNode(name);
    return this.waitServing(this.spec.workers, this.spec.readyTimeoutMs);
  }

  /** Starts (or restarts, with the same arguments and data) one node's process. */
  async startNode(name: string): Promise<void> {
    if (this.running.has(name)) throw new Error(`${name} is already running`);
    const node = this.topology.node(name);
    const argv = this.commandFor(node);
    const child = spawn('ip', ['netns', 'exec', node.netns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    if (child.pid === undefined) throw new Error(`could not start ${name}`);
    try {
      setPriority(child.pid, NODE_NICE); // the harness may run above them (main.ts); the nodes run as they would anywhere
    } catch {
      // exited already, or not permitted: it keeps the harness's priority
    }
    const log = this.logOf(name);
    log.write(`${this.timeline.stamp()} [harness] started: ${argv.join(' ')} (pid ${child.pid})\n`);
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream }).on('line', (line) => log.write(`${this.timeline.stamp()} ${line}\n`));
    }
    const exited = new Promise<void>((resolve) => {
      child.once('exit', (code, signal) => {
        const entry = this.running.get(name);
        if (entry?.child === child) this.running.delete(name);
        const how = signal !== null ? `signal ${signal}` : `status ${code}`;
        log.write(`${this.timeline.stamp()} [harness] exited with ${how}\n`);
        if (entry !== undefined && !entry.expectedExit) this.timeline.record('process', `${name} (pid ${child.pid}) exited on its own with ${how}`);
        resolve();
      });
    });
    this.running.set(name, { child, pid: child.pid, exited, expectedExit: false });
    this.timeline.record('process', `started ${name} (pid ${child.pid})`);
    if (node.role === 'etcd') {
      await this.waitEtcdHealthy(20_000);
      if (this.secure && !this.rbacApplied) await this.applyRbac();
    }
  }

  /** etcd users and roles for every node, then `auth enable` (as `bora up`; once: it survives restarts in the data dir). */
  private async applyRbac(): Promise<void> {
    const admin = this.etcdClient();
    try {
      const plan = etcdRbacPlan(new EtcdKeys(), { workers: this.workerNames(), coordinators: this.coordinatorNames(), admins: [CHAOS_ID] });
      await applyEtcdRbac(admin, plan, { enable: true });
      this.rbacApplied = true;
    } finally {
      admin.close();
    }
  }

  private commandFor(node: NetNode): string[] {
    const s = this.spec;
    const ttl = ['--lease-ttl-ms', String(s.leaseTtlMs)];
    switch (node.role) {
      case 'etcd': {
        const scheme = this.secure ? 'https' : 'http';
        const client = `${scheme}://${node.address}:${ETCD_CLIENT_PORT}`;
        const peer = `${scheme}://${node.address}:${ETCD_PEER_PORT}`;
        if (this.secure) return [findEtcd(), ...etcdTlsFlags({ name: 'chaos', dataDir: this.etcdDataDir, clientUrl: client, peerUrl: peer, files: this.pki.etcd })];
        return [
          findEtcd(), '--name', 'chaos', '--data-dir', this.etcdDataDir,
          '--listen-client-urls', client, '--advertise-client-urls', client,
          '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `chaos=${peer}`,
        ];
      }
      case 'coordinator': {
        const address = `${node.address}:${COORDINATOR_PORT}`;
        return [process.execPath, s.boraJs, 'coordinator', '--etcd', this.nodeEtcdUrl, '--listen', address, '--advertise', this.advertisedAddress(node.name), '--model', s.modelDir, '--metrics-port', String(METRICS_PORT), ...ttl, ...(s.replicas === 1 ? [] : ['--replicas', String(s.replicas)]), ...(s.placement === 'experts' ? ['--placement', 'experts'] : []), ...(s.coordinatorArgs ?? []), ...this.securityArgs(node)];
      }
      case 'worker': {
        const address = `${node.address}:${WORKER_PORT}`;
        return [
          process.execPath, s.boraJs, 'worker', '--etcd', this.nodeEtcdUrl, '--listen', address, '--advertise', this.advertisedAddress(node.name), '--id', node.name,
          '--models-dir', s.modelsDir, '--threads', '1', '--metrics-port', String(METRICS_PORT), ...ttl, ...this.securityArgs(node),
        ];
      }
    }
  }

  /** A node's certificate and audit log (the coordinator's also the API key hashes), or --insecure. */
  private securityArgs(node: NetNode): string[] {
    if (!this.secure) return insecureNodeArgs();
    const files = (node.role === 'coordinator' ? this.pki.coordinators : this.pki.workers).get(node.name);
    if (files === undefined) throw new Error(`no certificate was issued for ${node.name}`); // a bug in start()
    return [...nodeTlsArgs(files), '--audit-log', this.auditLog(node.name), ...(node.role === 'coordinator' ? ['--api-keys', this.pki.apiKeysFile] : [])];
  }

  private logOf(name: string): WriteStream {
    let log = this.logs.get(name);
    if (log === undefined) {
      log = createWriteStream(this.logFile(name), { flags: 'a' });
      this.logs.set(name, log);
    }
    return log;
  }

  /** Sends `signal` to a node's process; records nothing (the caller's fault does). */
  signal(name: string, signal: NodeJS.Signals): number {
    const entry = this.running.get(name);
    if (entry === undefined) throw new Error(`${name} is not running`);
    if (signal === 'SIGKILL' || signal === 'SIGTERM') entry.expectedExit = true;
    process.kill(entry.pid, signal);
    return entry.pid;
  }

  /** Resolves when the node's process has exited (at once if it is not running). */
  async exited(name: string, timeoutMs = 10_000): Promise<boolean> {
    const entry = this.running.get(name);
    if (entry === undefined) return true;
    return Promise.race([entry.exited.then(() => true), sleep(timeoutMs).then(() => false)]);
  }

  async waitEtcdHealthy(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (await this.etcdHealthy()) return;
      if (Date.now() > deadline) throw new Error(`etcd did not answer ${this.etcdUrl}/health within ${timeoutMs} ms (see ${this.logFile('etcd')})`);
      await sleep(100);
    }
  }

  private async etcdHealthy(): Promise<boolean> {
    if (this.secure) return tlsHealthy(this.etcdUrl, this.pki.admin);
    const response = await fetch(`${this.etcdUrl}/health`, { signal: AbortSignal.timeout(1000) }).catch(() => undefined);
    return response?.ok === true;
  }

  /** The status of whichever coordinator serves, or undefined when none does. */
  async leaderStatus(): Promise<{ name: string; status: ClusterStatus } | undefined> {
    const replies = await Promise.all(
      this.coordinatorNames().map(async (name) => ({ name, status: await fetchStatus(this.apiAddress(name), LEADER_STATUS_TIMEOUT_MS, this.adminAccess()).catch(() => undefined) })),
    );
    const serving = replies.filter((r): r is { name: string; status: ClusterStatus } => r.status?.serving === true);
    return serving.sort((a, b) => b.status.planEpoch - a.status.planEpoch)[0];
  }

  /** Waits until a coordinator serves a settled plan over `workers` workers, each holding layers or experts. */
  async waitServing(workers: number, timeoutMs: number): Promise<ClusterStatus> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const leader = await this.leaderStatus();
      const s = leader?.status;
      if (s !== undefined && s.settled && s.planEpoch > 0 && s.workers.length >= workers && s.workers.every((w) => w.ready && (w.layerEnd > w.layerStart || w.experts.length > 0))) return s;
      if (Date.now() > deadline) throw new Error(`no coordinator served a ready plan over ${workers} workers within ${timeoutMs} ms (last: ${JSON.stringify(s ?? null)}; see ${this.logDir})`);
      await sleep(200);
    }
  }

  /** SIGCONTs everything (a stopped process cannot act on SIGTERM), SIGTERMs, then SIGKILLs stragglers. */
  async stop(): Promise<void> {
    for (const [, entry] of this.running) {
      try {
        process.kill(entry.pid, 'SIGCONT');
      } catch {
        // gone
      }
    }
    const order = [...this.workerNames(), ...this.coordinatorNames(), 'etcd'];
    for (const group of [order.filter((n) => n !== 'etcd'), ['etcd']]) {
      const names = group.filter((n) => this.running.has(n));
      for (const name of names) this.signalQuietly(name, 'SIGTERM');
      await Promise.all(names.map(async (name) => (await this.exited(name, STOP_GRACE_MS)) || this.signalQuietly(name, 'SIGKILL')));
      await Promise.all(names.map((name) => this.exited(name, 2000)));
    }
    await Promise.all([...this.proxies.values()].map((p) => p.stop()));
    await Promise.all([...this.logs.values()].map((log) => new Promise<void>((resolve) => log.end(resolve))));
    this.logs.clear();
  }

  private signalQuietly(name: string, signal: NodeJS.Signals): void {
    try {
      this.signal(name, signal);
    } catch {
      // gone already
    }
  }
}
