/**
 * What this machine lets the harness do, probed once per run on throwaway `bchaos-probe*` links.
 * A scenario that needs a missing capability is reported as skipped with the probe's reason,
 * never as passed.
 *
 * - netns:    `ip netns` and veth pairs (every scenario).
 * - netem:    `tc qdisc ... netem` (sch_netem): delay, jitter, loss, duplication, reordering, rate.
 * - tcDrop:   clsact + u32 + mirred-redirect into a sink link: drops all traffic, or traffic to
 *             one address, on a link's ingress or egress. Stands in for `netem loss 100%` where
 *             netem is missing, and is how "cut worker -> etcd only" is made in any case.
 * - tbf:      `tc qdisc ... tbf` (token bucket): a rate limit where netem's `rate` is missing.
 * - tcpReset: `ss -K` (kernel CONFIG_INET_DIAG_DESTROY): aborts a TCP connection with a RST.
 * - packetFaults: ifb devices, a u32 filter on the IP id with a mirred mirror into one,
 *   `ip link set ... gso_max_segs`, and `nstat`: loss / duplicate / reorder of real packets
 *   without netem (packet-faults.ts).
 * The fault proxy (fault-proxy.ts) needs nothing beyond netns: it is a TCP proxy in the harness.
 */
import { findEtcd } from '../cli/processes';
import { tryRun, type CommandResult } from './shell';

export type Capability = { readonly ok: true; readonly detail: string } | { readonly ok: false; readonly reason: string };

export interface Capabilities {
  readonly root: Capability;
  readonly netns: Capability;
  readonly netem: Capability;
  readonly tcDrop: Capability;
  readonly tbf: Capability;
  readonly tcpReset: Capability;
  readonly packetFaults: Capability;
  readonly etcd: Capability;
}

export type CapabilityName = keyof Capabilities;

const PROBE_NETNS = 'bchaos-probe';
const PROBE_A = 'bchaos-probea';
const PROBE_B = 'bchaos-probeb';
const PROBE_IFB = 'bchaos-probei';

function attempt(host: ProbeHost, argv: readonly string[], what: string): Capability {
  const result = host.run(argv);
  return result.ok ? { ok: true, detail: what } : { ok: false, reason: `${what}: \`${argv.join(' ')}\` failed: ${(result.stderr || result.stdout).trim() || `status ${result.status}`}` };
}

/** What the probe runs against: this machine by default, a stand-in in tests. */
export interface ProbeHost {
  readonly isRoot: boolean;
  run(argv: readonly string[]): CommandResult;
  /** The etcd binary's path; throws when there is none. */
  findEtcd(): string;
}

export const THIS_MACHINE: ProbeHost = { isRoot: process.getuid?.() === 0, run: tryRun, findEtcd };

/** Probes every capability; leaves nothing behind. */
export function probeCapabilities(host: ProbeHost = THIS_MACHINE): Capabilities {
  const root: Capability = host.isRoot ? { ok: true, detail: 'running as root' } : { ok: false, reason: 'the harness must run as root (network namespaces, tc)' };
  let etcd: Capability;
  try {
    etcd = { ok: true, detail: host.findEtcd() };
  } catch (err) {
    etcd = { ok: false, reason: (err as Error).message };
  }
  if (!root.ok) return { root, netns: root, netem: root, tcDrop: root, tbf: root, tcpReset: root, packetFaults: root, etcd };

  const netnsAdd = attempt(host, ['ip', 'netns', 'add', PROBE_NETNS], 'network namespaces');
  host.run(['ip', 'netns', 'delete', PROBE_NETNS]);
  const vethAdd = attempt(host, ['ip', 'link', 'add', PROBE_A, 'type', 'veth', 'peer', 'name', PROBE_B], 'veth pairs');
  const netns = !netnsAdd.ok ? netnsAdd : !vethAdd.ok ? vethAdd : { ok: true as const, detail: 'ip netns + veth' };
  if (!vethAdd.ok) return { root, netns, netem: vethAdd, tcDrop: vethAdd, tbf: vethAdd, tcpReset: vethAdd, packetFaults: vethAdd, etcd };
  try {
    host.run(['ip', 'link', 'set', PROBE_A, 'up']);
    host.run(['ip', 'link', 'set', PROBE_B, 'up']);
    const netem = attempt(host, ['tc', 'qdisc', 'add', 'dev', PROBE_A, 'root', 'netem', 'delay', '1ms'], 'tc netem (kernel module sch_netem)');
    host.run(['tc', 'qdisc', 'del', 'dev', PROBE_A, 'root']);
    const tbf = attempt(host, ['tc', 'qdisc', 'add', 'dev', PROBE_A, 'root', 'tbf', 'rate', '5mbit', 'burst', '32kbit', 'latency', '400ms'], 'tc tbf');
    host.run(['tc', 'qdisc', 'del', 'dev', PROBE_A, 'root']);
    const clsact = attempt(host, ['tc', 'qdisc', 'add', 'dev', PROBE_A, 'clsact'], 'tc clsact');
    const tcDrop = !clsact.ok
      ? clsact
      : attempt(
          host,
          ['tc', 'filter', 'add', 'dev', PROBE_A, 'ingress', 'protocol', 'ip', 'u32', 'match', 'u32', '0', '0', 'action', 'mirred', 'egress', 'redirect', 'dev', PROBE_B],
          'tc u32 filter with mirred redirect',
        );
    const ssHelp = host.run(['ss', '--help']);
    const tcpReset: Capability = ssHelp.stdout.includes('--kill') || ssHelp.stderr.includes('--kill') ? { ok: true, detail: 'ss -K' } : { ok: false, reason: '`ss` lacks -K/--kill (iproute2 too old)' };
    const packetFaults = probePacketFaults(host, clsact);
    return { root, netns, netem, tcDrop, tbf, tcpReset, packetFaults, etcd };
  } finally {
    host.run(['ip', 'link', 'delete', PROBE_A]);
    host.run(['ip', 'link', 'delete', PROBE_IFB]);
  }
}

/** The first of the steps packet-faults.ts needs that fails, or ok (on the probe veth, whose clsact exists when `clsact` is ok). */
function probePacketFaults(host: ProbeHost, clsact: Capability): Capability {
  if (!clsact.ok) return clsact;
  const steps: [string[], string][] = [
    [['ip', 'link', 'add', PROBE_IFB, 'type', 'ifb'], 'ifb devices (kernel module ifb)'],
    [['tc', 'filter', 'add', 'dev', PROBE_A, 'ingress', 'prio', '2', 'protocol', 'ip', 'u32', 'match', 'ip', 'protocol', '6', '0xff', 'match', 'u16', '0x0000', '0x000f', 'at', '4', 'action', 'mirred', 'egress', 'mirror', 'dev', PROBE_IFB], 'a u32 match on the IP id with a mirred mirror'],
    [['ip', 'link', 'set', PROBE_B, 'gso_max_segs', '1'], 'ip link set gso_max_segs'],
    [['nstat', '-asz'], 'nstat (TCP counters)'],
  ];
  for (const [argv, what] of steps) {
    const result = attempt(host, argv, what);
    if (!result.ok) return result;
  }
  return { ok: true, detail: 'ifb + u32 (IP id) + mirred, gso_max_segs, nstat' };
}

export function describeCapabilities(caps: Capabilities): string[] {
  return (Object.entries(caps) as [CapabilityName, Capability][]).map(([name, c]) => (c.ok ? `${name}: yes (${c.detail})` : `${name}: NO — ${c.reason}`));
}
