/**
 * Fault injection on the harness's own nodes and links, each recorded on the timeline at the
 * moment it took effect (after the command that made it returned).
 *
 * Processes: SIGKILL, SIGSTOP / SIGCONT, SIGTERM, restart.
 * Links (a node's veth pair: `hostVeth` on the bridge side, `eth0` in the node's namespace):
 * - blackhole: `netem loss 100%` on BOTH ends (netem shapes egress only); without netem, the
 *   same effect with clsact filters on the bridge-side end that redirect every IP packet, in
 *   both directions, into the sink link (see capabilities.ts);
 * - cut one direction to one address (worker -> etcd): a clsact ingress filter on the bridge-side
 *   end matching the destination address; the reverse direction is untouched;
 * - netem delay / jitter / loss / duplicate / reorder, on the node's side (egress) so each hop
 *   through the bridge is shaped once;
 * - rate limit: netem `rate`, or tbf where netem is missing, on both ends;
 * - a TCP reset: `ss -K` inside the node's namespace;
 * - without netem: loss / duplicate / reorder of real packets with u32 filters, mirred and ifb
 *   (packet-faults.ts), and delay / jitter / resets in the fault proxy in front of a node
 *   (fault-proxy.ts, on a proxied cluster).
 * Every link fault can be healed on its own, and healAll() undoes whatever is still applied.
 */
import type { Capabilities } from './capabilities';
import type { ChaosCluster } from './cluster';
import { NO_FAULTS, type ProxyFaults } from './fault-proxy';
import { SINK, type NetNode } from './netns';
import { ensureIfbs, packetFaultSteps, SELECTORS, shareOf } from './packet-faults';
import { inNetns, run, tryRun } from './shell';
import type { Timeline } from './timeline';

export interface LinkFault {
  readonly description: string;
  readonly node: string;
  healed: boolean;
  readonly undo: readonly (readonly string[])[];
  /** Undoes a fault that is not a command (a proxy's setting). */
  readonly undoFn?: () => void;
}

export class Faults {
  private readonly active: LinkFault[] = [];
  private readonly paused = new Set<string>();

  constructor(
    private readonly caps: Capabilities,
    private readonly cluster: ChaosCluster,
    private readonly timeline: Timeline,
  ) {}

  // ---- processes ----

  kill(name: string): number {
    const pid = this.cluster.signal(name, 'SIGKILL');
    this.timeline.record('fault', `SIGKILL ${name} (pid ${pid})`);
    return this.timeline.nowMs();
  }

  terminate(name: string): number {
    const pid = this.cluster.signal(name, 'SIGTERM');
    this.timeline.record('fault', `SIGTERM ${name} (pid ${pid})`);
    return this.timeline.nowMs();
  }

  pause(name: string): number {
    const pid = this.cluster.signal(name, 'SIGSTOP');
    this.paused.add(name);
    this.timeline.record('fault', `SIGSTOP ${name} (pid ${pid})`);
    return this.timeline.nowMs();
  }

  resume(name: string): number {
    const pid = this.cluster.signal(name, 'SIGCONT');
    this.paused.delete(name);
    this.timeline.record('heal', `SIGCONT ${name} (pid ${pid})`);
    return this.timeline.nowMs();
  }

  async restart(name: string): Promise<number> {
    await this.cluster.startNode(name);
    this.timeline.record('heal', `restarted ${name} (pid ${this.cluster.pid(name)})`);
    return this.timeline.nowMs();
  }

  // ---- links ----

  /** Every packet to and from `name` is dropped silently, until healed. */
  blackhole(name: string): LinkFault {
    const node = this.cluster.node(name);
    if (this.caps.netem.ok) {
      return this.apply(name, `blackhole ${name} (netem loss 100% on both ends of its veth)`, [
        [['tc', 'qdisc', 'add', 'dev', node.hostVeth, 'root', 'netem', 'loss', '100%'], ['tc', 'qdisc', 'del', 'dev', node.hostVeth, 'root']],
        [inNetns(node.netns, ['tc', 'qdisc', 'add', 'dev', node.nodeVeth, 'root', 'netem', 'loss', '100%']), inNetns(node.netns, ['tc', 'qdisc', 'del', 'dev', node.nodeVeth, 'root'])],
      ]);
    }
    this.require('tcDrop', 'blackhole');
    return this.apply(name, `blackhole ${name} (tc clsact: every IP packet from and to its veth redirected into ${SINK}; netem unavailable)`, [
      [['tc', 'qdisc', 'add', 'dev', node.hostVeth, 'clsact'], ['tc', 'qdisc', 'del', 'dev', node.hostVeth, 'clsact']],
      [dropFilter(node, 'ingress', undefined), []],
      [dropFilter(node, 'egress', undefined), []],
    ]);
  }

  /** Packets from `name` to `target`'s address are dropped; everything else (and the reverse) flows. */
  cut(name: string, target: string): LinkFault {
    this.require('tcDrop', 'a one-way cut');
    const node = this.cluster.node(name);
    const to = this.cluster.node(target).address;
    return this.apply(name, `cut ${name} -> ${target} only (tc ingress filter on ${node.hostVeth}: ip dst ${to} redirected into ${SINK})`, [
      [['tc', 'qdisc', 'add', 'dev', node.hostVeth, 'clsact'], ['tc', 'qdisc', 'del', 'dev', node.hostVeth, 'clsact']],
      [dropFilter(node, 'ingress', to), []],
    ]);
  }

  /** netem with `args` (e.g. ["delay", "100ms", "50ms"]) on the node's egress. */
  netem(name: string, args: readonly string[]): LinkFault {
    this.require('netem', 'netem');
    const node = this.cluster.node(name);
    return this.apply(name, `netem ${args.join(' ')} on ${name}'s egress`, [
      [inNetns(node.netns, ['tc', 'qdisc', 'add', 'dev', node.nodeVeth, 'root', 'netem', ...args]), inNetns(node.netns, ['tc', 'qdisc', 'del', 'dev', node.nodeVeth, 'root'])],
    ]);
  }

  /** Both directions of `name`'s link limited to `rate` (tc syntax, e.g. "5mbit"). */
  rateLimit(name: string, rate: string): LinkFault {
    const node = this.cluster.node(name);
    const qdisc = this.caps.netem.ok ? ['netem', 'rate', rate] : this.caps.tbf.ok ? ['tbf', 'rate', rate, 'burst', '32kbit', 'latency', '400ms'] : undefined;
    if (qdisc === undefined) throw new Error(`a rate limit needs netem or tbf: ${!this.caps.tbf.ok ? this.caps.tbf.reason : ''}`);
    return this.apply(name, `rate ${rate} on both ends of ${name}'s link (${qdisc[0]})`, [
      [['tc', 'qdisc', 'add', 'dev', node.hostVeth, 'root', ...qdisc], ['tc', 'qdisc', 'del', 'dev', node.hostVeth, 'root']],
      [inNetns(node.netns, ['tc', 'qdisc', 'add', 'dev', node.nodeVeth, 'root', ...qdisc]), inNetns(node.netns, ['tc', 'qdisc', 'del', 'dev', node.nodeVeth, 'root'])],
    ]);
  }

  /**
   * Loss, duplication and reordering of `name`'s outgoing TCP packets (packet-faults.ts): the
   * netem-free stand-in for `netem loss 10% duplicate 5% reorder 5%`.
   */
  packetFaults(name: string): LinkFault {
    this.require('packetFaults', 'packet loss, duplication and reordering');
    const node = this.cluster.node(name);
    ensureIfbs();
    const pct = (k: 'loss' | 'duplicate' | 'reorder'): string => `${(100 * shareOf(k)).toFixed(1)} %`;
    return this.apply(name, `packet faults on ${name}'s egress (u32 on IP id, ${SELECTORS.length} filters: loss ${pct('loss')}, duplicate ${pct('duplicate')}, reorder ${pct('reorder')})`, packetFaultSteps(node));
  }

  /** Delay (and jitter) on every connection to `name`, both directions, in its fault proxy. */
  proxyDelay(name: string, faults: ProxyFaults): LinkFault {
    const proxy = this.cluster.proxy(name);
    proxy.setFaults(faults);
    const fault: LinkFault = { description: `delay ${faults.delayMs} +/- ${faults.jitterMs} ms on every connection to ${name}, both directions (fault proxy)`, node: name, healed: false, undo: [], undoFn: () => proxy.setFaults(NO_FAULTS) };
    this.active.push(fault);
    this.timeline.record('fault', fault.description);
    return fault;
  }

  /** Aborts (RST, both sides) every connection through `name`'s fault proxy; returns how many. */
  proxyReset(name: string): number {
    const n = this.cluster.proxy(name).resetAll();
    this.timeline.record('fault', `TCP reset of ${n} connection(s) to ${name} (fault proxy, RST both sides)`);
    return n;
  }

  /** Aborts (RST) every TCP connection of `name` to `peer`'s address; returns how many. */
  tcpReset(name: string, peer: string): number {
    this.require('tcpReset', 'a TCP reset');
    const node = this.cluster.node(name);
    const out = run(inNetns(node.netns, ['ss', '-K', '-t', 'dst', this.cluster.node(peer).address]));
    const killed = out.split('\n').filter((l) => /ESTAB|CLOSE|SYN|FIN/.test(l)).length;
    this.timeline.record('fault', `TCP reset of ${killed} connection(s) ${name} -> ${peer} (ss -K)`);
    return killed;
  }

  heal(fault: LinkFault): number {
    if (!fault.healed) {
      for (const argv of fault.undo) if (argv.length > 0) tryRun(argv);
      fault.undoFn?.();
      fault.healed = true;
      this.timeline.record('heal', `healed: ${fault.description}`);
    }
    return this.timeline.nowMs();
  }

  /** Nodes with a link fault or a pause in effect. */
  faultedNodes(): Set<string> {
    return new Set([...this.active.filter((f) => !f.healed).map((f) => f.node), ...this.paused]);
  }

  /** Undoes every link fault still applied and resumes every paused process. */
  healAll(): void {
    for (const fault of this.active) this.heal(fault);
    for (const name of [...this.paused]) {
      try {
        this.resume(name);
      } catch {
        this.paused.delete(name); // exited meanwhile
      }
    }
  }

  private require(capability: 'netem' | 'tcDrop' | 'tcpReset' | 'packetFaults', what: string): void {
    const c = this.caps[capability];
    if (!c.ok) throw new Error(`${what} needs ${capability}: ${c.reason}`);
  }

  /** Runs each step's command; on a failure, undoes the steps already made and throws. */
  private apply(name: string, description: string, steps: readonly (readonly [readonly string[], readonly string[]])[]): LinkFault {
    const undo: (readonly string[])[] = [];
    try {
      for (const [argv, reverse] of steps) {
        run(argv);
        undo.unshift(reverse);
      }
    } catch (err) {
      for (const argv of undo) if (argv.length > 0) tryRun(argv);
      throw err;
    }
    const fault: LinkFault = { description, node: name, healed: false, undo };
    this.active.push(fault);
    this.timeline.record('fault', description);
    return fault;
  }
}

/** A clsact filter on the node's bridge-side veth dropping IP packets (to `dst` only, when given). */
function dropFilter(node: NetNode, hook: 'ingress' | 'egress', dst: string | undefined): string[] {
  const match = dst === undefined ? ['match', 'u32', '0', '0'] : ['match', 'ip', 'dst', `${dst}/32`];
  return ['tc', 'filter', 'add', 'dev', node.hostVeth, hook, 'protocol', 'ip', 'u32', ...match, 'action', 'mirred', 'egress', 'redirect', 'dev', SINK];
}
