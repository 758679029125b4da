/**
 * A real, single-member etcd for integration tests: free loopback ports, a temporary data
 * directory, and the process under the test's control (SIGKILL it, SIGSTOP it, restart it on the
 * same data directory and ports).
 *
 * The binary is $ETCD_BIN, else `etcd` on PATH, else /usr/bin/etcd. When none exists, startEtcd()
 * throws: a missing etcd fails the integration tests loudly instead of skipping them.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants as fsConstants } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { freePort } from '../../cli/processes';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { after, before } from 'node:test';
import type { Etcd3 } from 'etcd3';
import { createEtcdClient } from '../../common/cluster/etcd-keys';
import type { MemberInfo } from '../../common/cluster/member';
import { workerId } from '../../common/ids';
import { type Logger, callbackLogger } from '../../common/logging/logger';

export const ETCD_INSTALL_HINT = 'etcd is not installed: run `apt-get update && apt-get install -y etcd-server` (or set ETCD_BIN)';

/** How long etcd may take to answer /health after it is spawned. */
const START_TIMEOUT_MS = 15_000;
const HEALTH_POLL_MS = 50;
const STOP_TIMEOUT_MS = 5_000;

export interface EtcdServer {
  /** http://127.0.0.1:<port>, for the etcd3 client's `hosts`. */
  readonly url: string;
  readonly dataDir: string;
  /** Stops etcd (SIGKILL if SIGTERM is not enough) and deletes the data directory. */
  stop(): Promise<void>;
  /** Sends `signal` to the running etcd (SIGKILL to crash it, SIGSTOP/SIGCONT to pause it). */
  kill(signal: NodeJS.Signals): void;
  /** Waits for the current process to exit (killing it if needed), then starts etcd again on
   * the same data directory and ports, and waits until it answers. */
  restart(): Promise<void>;
}

export function findEtcdBinary(): string | undefined {
  const candidates = [
    process.env.ETCD_BIN,
    ...(process.env.PATH ?? '').split(delimiter).filter((d) => d.length > 0).map((d) => join(d, 'etcd')),
    '/usr/bin/etcd',
  ];
  for (const candidate of candidates) {
    if (candidate === undefined || candidate.length === 0) continue;
    try {
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // not this one
    }
  }
  return undefined;
}

function healthy(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(`${url}/health`, { timeout: 1_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve(res.statusCode === 200 && body.includes('"health":"true"')));
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

const live = new Set<ChildProcess>();
// If the test process dies without stop(), do not leave etcd servers behind.
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

export async function startEtcd(): Promise<EtcdServer> {
  const binary = findEtcdBinary();
  if (binary === undefined) throw new Error(ETCD_INSTALL_HINT);
  const dataDir = await mkdtemp(join(tmpdir(), 'bora-etcd-'));
  const clientPort = await freePort();
  const peerPort = await freePort(); // never clientPort: freePort hands each port out once
  const url = `http://127.0.0.1:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const args = [
    '--name', 'bora-test',
    '--data-dir', join(dataDir, 'member-data'),
    '--listen-client-urls', url,
    '--advertise-client-urls', url,
    '--listen-peer-urls', peerUrl,
    '--initial-advertise-peer-urls', peerUrl,
    '--initial-cluster', `bora-test=${peerUrl}`,
    '--initial-cluster-state', 'new', // ignored by etcd once the data directory holds a member
    '--logger', 'zap',
    '--log-level', 'error',
  ];

  let child: ChildProcess | undefined;
  let stderrTail = '';

  async function launch(): Promise<void> {
    stderrTail = '';
    const proc = spawn(binary as string, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    child = proc;
    live.add(proc);
    proc.once('exit', () => live.delete(proc));
    proc.stderr?.setEncoding('utf8');
    proc.stderr?.on('data', (chunk: string) => {
      stderrTail = (stderrTail + chunk).slice(-4_000);
    });
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        throw new Error(`etcd exited during start (code ${proc.exitCode}, signal ${proc.signalCode}): ${stderrTail}`);
      }
      if (await healthy(url)) return;
      await new Promise((resolve) => setTimeout(resolve, HEALTH_POLL_MS));
    }
    proc.kill('SIGKILL');
    throw new Error(`etcd did not become healthy at ${url} within ${START_TIMEOUT_MS} ms: ${stderrTail}`);
  }

  async function halt(): Promise<void> {
    const proc = child;
    if (proc === undefined) return;
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGCONT'); // a stopped process cannot act on SIGTERM
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exited(proc);
      clearTimeout(timer);
    }
  }

  try {
    await launch();
  } catch (err) {
    await halt();
    await rm(dataDir, { recursive: true, force: true });
    throw err;
  }

  return {
    url,
    dataDir,
    kill(signal) {
      child?.kill(signal);
    },
    async restart() {
      await halt();
      await launch();
    },
    async stop() {
      await halt();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** A member record for tests: only the id matters unless overridden. */
export function testMember(id: string, overrides: Partial<MemberInfo> = {}): MemberInfo {
  return {
    id: workerId(id),
    address: '127.0.0.1:7001',
    memoryBytes: 1 << 30,
    accelerators: ['cpu'],
    load: { activeSequences: 0, queueDepth: 0 },
    startedAtMs: Date.now(),
    ...overrides,
  };
}

/** A real etcd and a client for one describe() block, started before its tests, stopped after. */
export interface EtcdSuite {
  readonly etcd: EtcdServer;
  readonly client: Etcd3;
  /** Messages logged through `log`, for assertions on what components reported. */
  readonly logs: string[];
  readonly log: Logger;
}

/** Call inside describe(): registers the before/after hooks; read the fields inside tests. */
export function etcdSuite(): EtcdSuite {
  const logs: string[] = [];
  const state: { etcd?: EtcdServer; client?: Etcd3 } = {};
  before(async () => {
    state.etcd = await startEtcd();
    state.client = createEtcdClient({ hosts: state.etcd.url });
  });
  after(async () => {
    state.client?.close();
    await state.etcd?.stop();
  });
  return {
    get etcd(): EtcdServer {
      return state.etcd!;
    },
    get client(): Etcd3 {
      return state.client!;
    },
    logs,
    log: callbackLogger((message) => void logs.push(message)),
  };
}
