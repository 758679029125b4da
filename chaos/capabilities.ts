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
 */
import { findEtcd } from '../cli/processes';
import { tryRun } from './shell';

export type Capability = { readonly ok: true; readonly detail: string } | { readonly ok: false; readonly reason: string };

export interface Capabilities {
  readonly root: Capability;
  readonly netns: Capability;
  readonly netem: Capability;
  readonly tcDrop: Capability;
  readonly tbf: Capability;
  readonly tcpReset: Capability;
  readonly etcd: Capability;
}

export type CapabilityName = keyof Capabilities;

const PROBE_NETNS = 'bchaos-probe';
const PROBE_A = 'bchaos-probea';
const PROBE_B = 'bchaos-probeb';

function attempt(argv: readonly string[], what: string): Capability {
  const result = tryRun(argv);
  return result.ok ? { ok: true, detail: what } : { ok: false, reason: `${what}: \`${argv.join(' ')}\` failed: ${(result.stderr || result.stdout).trim() || `status ${result.status}`}` };
}

/** Probes every capability; leaves nothing behind. */
export function probeCapabilities(): Capabilities {
  const root: Capability = process.getuid?.() === 0 ? { ok: true, detail: 'running as root' } : { ok: false, reason: 'the harness must run as root (network namespaces, tc)' };
  let etcd: Capability;
  try {
    etcd = { ok: true, detail: findEtcd() };
  } catch (err) {
    etcd = { ok: false, reason: (err as Error).message };
  }
  if (!root.ok) return { root, netns: root, netem: root, tcDrop: root, tbf: root, tcpReset: root, etcd };

  const netnsAdd = attempt(['ip', 'netns', 'add', PROBE_NETNS], 'network namespaces');
  tryRun(['ip', 'netns', 'delete', PROBE_NETNS]);
  const vethAdd = attempt(['ip', 'link', 'add', PROBE_A, 'type', 'veth', 'peer', 'name', PROBE_B], 'veth pairs');
  const netns = !netnsAdd.ok ? netnsAdd : !vethAdd.ok ? vethAdd : { ok: true as const, detail: 'ip netns + veth' };
  if (!vethAdd.ok) return { root, netns, netem: vethAdd, tcDrop: vethAdd, tbf: vethAdd, tcpReset: vethAdd, etcd };
  try {
    tryRun(['ip', 'link', 'set', PROBE_A, 'up']);
    tryRun(['ip', 'link', 'set', PROBE_B, 'up']);
    const netem = attempt(['tc', 'qdisc', 'add', 'dev', PROBE_A, 'root', 'netem', 'delay', '1ms'], 'tc netem (kernel module sch_netem)');
    tryRun(['tc', 'qdisc', 'del', 'dev', PROBE_A, 'root']);
    const tbf = attempt(['tc', 'qdisc', 'add', 'dev', PROBE_A, 'root', 'tbf', 'rate', '5mbit', 'burst', '32kbit', 'latency', '400ms'], 'tc tbf');
    tryRun(['tc', 'qdisc', 'del', 'dev', PROBE_A, 'root']);
    const clsact = attempt(['tc', 'qdisc', 'add', 'dev', PROBE_A, 'clsact'], 'tc clsact');
    const tcDrop = !clsact.ok
      ? clsact
      : attempt(
          ['tc', 'filter', 'add', 'dev', PROBE_A, 'ingress', 'protocol', 'ip', 'u32', 'match', 'u32', '0', '0', 'action', 'mirred', 'egress', 'redirect', 'dev', PROBE_B],
          'tc u32 filter with mirred redirect',
        );
    const ssHelp = tryRun(['ss', '--help']);
    const tcpReset: Capability = ssHelp.stdout.includes('--kill') || ssHelp.stderr.includes('--kill') ? { ok: true, detail: 'ss -K' } : { ok: false, reason: '`ss` lacks -K/--kill (iproute2 too old)' };
    return { root, netns, netem, tcDrop, tbf, tcpReset, etcd };
  } finally {
    tryRun(['ip', 'link', 'delete', PROBE_A]);
  }
}

export function describeCapabilities(caps: Capabilities): string[] {
  return (Object.entries(caps) as [CapabilityName, Capability][]).map(([name, c]) => (c.ok ? `${name}: yes (${c.detail})` : `${name}: NO — ${c.reason}`));
}
