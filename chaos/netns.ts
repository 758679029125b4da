/**
 * The game day's network: one Linux network namespace per node (etcd, each coordinator, each
 * worker), each joined by a veth pair to a bridge in the root namespace, where the harness (the
 * client) runs. Addresses come from a private /24 that the harness creates and owns; faults are
 * only ever applied to links named here.
 *
 *   root ns:  bchaos-br (SUBNET.1/24) --+-- bchaos-etcd <==veth==> [netns bchaos-etcd] eth0 SUBNET.2
 *                                       +-- bchaos-c1   <==veth==> [netns bchaos-c1]   eth0 SUBNET.11
 *                                       +-- bchaos-w1   <==veth==> [netns bchaos-w1]   eth0 SUBNET.21
 *             bchaos-sink <==veth==> bchaos-sinkp   (both up, unaddressed: what is redirected there is dropped)
 *
 * Everything the harness creates is named `bchaos-*`, so a run that crashed (SIGKILL, power loss)
 * leaves nothing that the next run cannot find and remove: `removeStale()` kills the processes
 * still inside `bchaos-*` namespaces, deletes those namespaces and the `bchaos-*` links.
 */
import { closeSync, existsSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, tryRun } from './shell';

export const NAME_PREFIX = 'bchaos-';
export const BRIDGE = 'bchaos-br';
/** A veth pair whose far end is unaddressed: packets redirected into it go nowhere (a drop). */
export const SINK = 'bchaos-sink';
const SINK_PEER = 'bchaos-sinkp';
const LOCK_FILE = join(tmpdir(), 'bora-chaos.lock');
const MAX_IFNAME_CHARS = 15;

export type NodeRole = 'etcd' | 'coordinator' | 'worker';

/** A node's place in the network. */
export interface NetNode {
  /** Short name: "etcd", "c1", "w2". */
  readonly name: string;
  readonly role: NodeRole;
  readonly netns: string;
  readonly address: string;
  /** The veth end in the root namespace (a bridge port). */
  readonly hostVeth: string;
  /** The veth end inside the node's namespace. */
  readonly nodeVeth: string;
}

/** Host part of a node's address: etcd .2, coordinator cN .10+N, worker wN .20+N. */
function hostIndexOf(name: string, role: NodeRole): number {
  if (role === 'etcd') return 2;
  const n = Number(/^[cw](\d+)$/.exec(name)?.[1] ?? NaN);
  if (!Number.isInteger(n) || n < 1 || n > 9) throw new Error(`node name "${name}" must be c1..c9 or w1..w9`);
  return (role === 'coordinator' ? 10 : 20) + n;
}

/** True while `pid` runs. A zombie (exited, not yet reaped by its parent, which may be this
 * process, blocked in a synchronous cleanup) counts as gone. */
function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '')[0] !== 'Z';
  } catch {
    return false;
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Kills what runs inside `bchaos-*` namespaces and deletes them and the `bchaos-*` links. Returns what it removed. */
export function removeStale(): string[] {
  const removed: string[] = [];
  const namespaces = tryRun(['ip', 'netns', 'list']).stdout.split('\n').map((l) => l.split(' ')[0]).filter((n) => n.startsWith(NAME_PREFIX));
  // Kill everything first, then wait once: the processes die in parallel.
  const killed = new Map<string, number[]>();
  for (const netns of namespaces) {
    const pids = tryRun(['ip', 'netns', 'pids', netns]).stdout.split(/\s+/).filter((p) => p !== '').map(Number);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    killed.set(netns, pids);
  }
  const all = [...killed.values()].flat();
  const deadline = Date.now() + 3000;
  while (all.some(pidAlive) && Date.now() < deadline) sleepSync(50);
  for (const [netns, pids] of killed) {
    tryRun(['ip', 'netns', 'delete', netns]);
    removed.push(`netns ${netns}${pids.length > 0 ? ` (killed ${pids.join(', ')})` : ''}`);
  }
  const links = tryRun(['ip', '-o', 'link', 'show']).stdout.split('\n').map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1]).filter((n): n is string => n !== undefined && n.startsWith(NAME_PREFIX));
  for (const link of links) {
    if (tryRun(['ip', 'link', 'delete', link]).ok) removed.push(`link ${link}`);
  }
  return removed;
}

/** The harness's network: built once per scenario run, destroyed after it. */
export class Topology {
  readonly gateway: string;
  private readonly nodes = new Map<string, NetNode>();
  private created = false;

  /** `subnet`: the first three octets of the /24, e.g. "10.77.0". */
  constructor(readonly subnet: string) {
    if (!/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.test(subnet)) throw new Error(`subnet must be three octets like 10.77.0, got "${subnet}"`);
    this.gateway = `${subnet}.1`;
  }

  /** Creates the bridge and the sink. Refuses a subnet that something else on this machine uses. */
  create(): void {
    const inUse = tryRun(['ip', '-4', '-o', 'addr', 'show']).stdout.split('\n').find((l) => l.includes(` ${this.subnet}.`) && !l.includes(BRIDGE));
    if (inUse !== undefined) throw new Error(`${this.subnet}.0/24 is already used on this machine (${inUse.trim()}); choose another with --subnet`);
    this.created = true;
    run(['ip', 'link', 'add', BRIDGE, 'type', 'bridge']);
    run(['ip', 'addr', 'add', `${this.gateway}/24`, 'dev', BRIDGE]);
    run(['ip', 'link', 'set', BRIDGE, 'up']);
    run(['ip', 'link', 'add', SINK, 'type', 'veth', 'peer', 'name', SINK_PEER]);
    run(['ip', 'link', 'set', SINK, 'up']);
    run(['ip', 'link', 'set', SINK_PEER, 'up']);
  }

  /** A namespace for `name`, its veth pair on the bridge, its address, loopback up. */
  addNode(name: string, role: NodeRole): NetNode {
    if (this.nodes.has(name)) throw new Error(`node ${name} exists`);
    const netns = `${NAME_PREFIX}${name}`;
    const hostVeth = `${NAME_PREFIX}${name}`;
    if (hostVeth.length > MAX_IFNAME_CHARS) throw new Error(`interface name ${hostVeth} is longer than ${MAX_IFNAME_CHARS} characters`);
    const node: NetNode = { name, role, netns, address: `${this.subnet}.${hostIndexOf(name, role)}`, hostVeth, nodeVeth: 'eth0' };
    run(['ip', 'netns', 'add', netns]);
    this.nodes.set(name, node);
    run(['ip', 'link', 'add', hostVeth, 'type', 'veth', 'peer', 'name', node.nodeVeth, 'netns', netns]);
    run(['ip', 'link', 'set', hostVeth, 'master', BRIDGE]);
    run(['ip', 'link', 'set', hostVeth, 'up']);
    run(['ip', 'netns', 'exec', netns, 'ip', 'addr', 'add', `${node.address}/24`, 'dev', node.nodeVeth]);
    run(['ip', 'netns', 'exec', netns, 'ip', 'link', 'set', node.nodeVeth, 'up']);
    run(['ip', 'netns', 'exec', netns, 'ip', 'link', 'set', 'lo', 'up']);
    return node;
  }

  /**
   * An extra address on the bridge (SUBNET.(100 + the node's host part)) where the harness's fault
   * proxy for `name` listens: the node's peers dial it instead of the node.
   */
  addProxyAddress(name: string): string {
    const node = this.node(name);
    const host = Number(node.address.split('.')[3]);
    const address = `${this.subnet}.${100 + host}`;
    run(['ip', 'addr', 'add', `${address}/24`, 'dev', BRIDGE]);
    return address;
  }

  node(name: string): NetNode {
    const node = this.nodes.get(name);
    if (node === undefined) throw new Error(`no node ${name} in the topology`);
    return node;
  }

  all(): NetNode[] {
    return [...this.nodes.values()];
  }

  /** Deletes every namespace and link this topology made (killing what still runs in them). */
  destroy(): void {
    if (!this.created && this.nodes.size === 0) return;
    removeStale();
    this.nodes.clear();
    this.created = false;
  }
}

/**
 * One harness at a time owns the `bchaos-*` names and the subnet. The lock names its holder's
 * pid; a lock whose holder is dead is stale and taken over.
 */
export function acquireLock(): void {
  if (existsSync(LOCK_FILE)) {
    const holder = Number(readFileSync(LOCK_FILE, 'utf8').trim());
    if (Number.isInteger(holder) && holder !== process.pid && pidAlive(holder)) {
      throw new Error(`another chaos run (pid ${holder}) holds ${LOCK_FILE}; wait for it or stop it`);
    }
    rmSync(LOCK_FILE, { force: true });
  }
  const fd = openSync(LOCK_FILE, 'wx');
  writeSync(fd, String(process.pid));
  closeSync(fd);
}

export function releaseLock(): void {
  try {
    if (Number(readFileSync(LOCK_FILE, 'utf8').trim()) === process.pid) rmSync(LOCK_FILE, { force: true });
  } catch {
    // no lock
  }
}
