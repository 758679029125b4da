/**
 * Starting and stopping the local cluster's processes: detached children with their output in
 * log files, free loopback ports, the etcd binary, and waiting for a condition with a deadline.
 */
import { spawn } from 'node:child_process';
import { existsSync, openSync } from 'node:fs';
import { createServer } from 'node:net';
import { delimiter, join } from 'node:path';
import { UnavailableError } from '../common/errors';

/**
 * Ports are chosen below Linux's ephemeral range (32768-60999), where the kernel hands out
 * ports for `bind(0)` and outgoing connections: a port picked here cannot be taken by a worker
 * binding port 0 between this check and its owner binding it.
 */
const PORT_RANGE_START = 20000;
const PORT_RANGE_END = 32000;

function tryPort(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

/**
 * Ports this process has handed out. A port is only bound later, by the process it is given to,
 * so without this two calls in a row (say a coordinator's API and metrics ports) could both get
 * the same still-free port and one of those processes would fail to bind.
 */
const handedOut = new Set<number>();

export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = PORT_RANGE_START + Math.floor(Math.random() * (PORT_RANGE_END - PORT_RANGE_START));
    if (handedOut.has(port) || !(await tryPort(port, host))) continue;
    handedOut.add(port);
    return port;
  }
  throw new UnavailableError(`no free port in [${PORT_RANGE_START}, ${PORT_RANGE_END}) on ${host}`);
}

/** The etcd server binary: $BORA_ETCD_BIN, then PATH, then Debian's location. */
export function findEtcd(): string {
  const candidates = [process.env.BORA_ETCD_BIN, ...(process.env.PATH ?? '').split(delimiter).map((d) => join(d, 'etcd')), '/usr/bin/etcd'];
  const found = candidates.find((c) => c !== undefined && c !== '' && existsSync(c));
  if (found === undefined) {
    throw new UnavailableError('etcd was not found: install it with `apt-get install -y etcd-server` (Debian) or pass --etcd URL of a running one');
  }
  return found;
}

/** Starts a detached process (it outlives this one) writing stdout and stderr to `logFile`. */
export function spawnDetached(command: string, args: readonly string[], logFile: string, env: NodeJS.ProcessEnv = process.env): number {
  const log = openSync(logFile, 'a');
  const child = spawn(command, args, { detached: true, stdio: ['ignore', log, log], env });
  child.unref();
  if (child.pid === undefined) throw new UnavailableError(`could not start ${command}`);
  return child.pid;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Polls `probe` until it returns a value, or fails after `timeoutMs` with `what` in the message. */
export async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>, intervalMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const detail = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      throw new UnavailableError(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** SIGTERM, then SIGKILL whatever is still alive after `graceMs`. */
export async function stopProcesses(pids: readonly number[], graceMs = 5000): Promise<void> {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  const deadline = Date.now() + graceMs;
  while (pids.some(isAlive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  for (const pid of pids.filter(isAlive)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}
