/**
 * Loss, duplication and reordering of real packets without sch_netem, made with what this kernel
 * has: tc clsact + u32 filters + mirred, and ifb devices. TCP in the nodes' kernels then has to
 * repair what happened (retransmit, discard duplicates, reassemble), exactly as under netem.
 *
 * On a node's bridge-side veth (its ingress is the node's egress), three kinds of u32 filter
 * pick TCP packets by the low bits of the IP header's identification field, which Linux
 * increments per packet on each connection (from a random start), so a retransmission carries a
 * new id and is not picked again on the same grounds:
 * - loss (ids = 1 mod 16, or 3 mod 32: 6 of 64, 9.4 %; never two consecutive ids): redirected
 *   into the sink link (dropped);
 * - duplicate (ids 4, 5, 6 mod 64: 4.7 %): mirrored to an ifb device, which puts the copy back on
 *   the same veth's ingress after the original (ifb skips classification on the way back);
 * - reorder (ids 8, 9, 10 mod 64: 4.7 %): redirected to an ifb device whose token bucket (tbf,
 *   `REORDER_RATE`) holds it while later packets of the flow pass; past its queue, it is lost.
 * The selection is periodic per connection rather than random (u32 has no random match and this
 * kernel has no gact action): 3 of every 64 packets of a flow duplicated, and so on. Id 0 is in
 * no set: this kernel sends pure ACKs (and SYN-ACKs) with id 0, and a set holding 0 would take
 * every one of them; so the faults hit data-carrying packets, and ACKs only by loss of the data
 * they acknowledge.
 *
 * Offloads would make one skb a burst of up to 64 KiB (GSO), so the scenario's nodes are set up
 * with `gso_max_segs 1` on their veth (cluster.ts `singlePacketSkbs`; a socket takes the setting
 * when it connects): each skb is one MTU packet.
 *
 * Proof that the faults happened: the packets each filter's action took (`tc -s filter show`),
 * the reorder bucket's overlimits (packets it had to hold), and each node's own TCP counters
 * (`nstat`: retransmitted segments, out-of-order segments queued, duplicate segments reported).
 */
import type { NetNode } from './netns';
import { SINK } from './netns';
import { inNetns, run, tryRun } from './shell';

export const DUP_IFB = 'bchaos-dup';
export const REORDER_IFB = 'bchaos-ro';
/**
 * The reorder bucket: one packet's worth of burst, so a packet arriving while the one before it
 * still "transmits" waits for tokens (a 1500-byte packet takes 0.6 ms at this rate, while the
 * packets behind it on the veth pass in microseconds: they overtake it). Its queue holds 20 ms of
 * packets; past that a diverted packet is lost. At 4.7 % of a link's packets the bucket is rarely
 * more than a few packets deep, so it reorders by about netem's `delay 5ms reorder 5%` and adds
 * little loss.
 */
const REORDER_RATE = '20mbit';
const REORDER_QUEUE = '20ms';

export type PacketFaultKind = 'loss' | 'duplicate' | 'reorder';

interface Selector {
  readonly kind: PacketFaultKind;
  /** A 16-bit mask and value on the IP identification field (offset 4). */
  readonly mask: number;
  readonly value: number;
}

/** Which packets each kind takes; the sets are disjoint (see the file comment). */
export const SELECTORS: readonly Selector[] = [
  { kind: 'loss', mask: 0x000f, value: 1 },
  { kind: 'loss', mask: 0x001f, value: 3 },
  { kind: 'duplicate', mask: 0x003e, value: 4 },
  { kind: 'duplicate', mask: 0x003f, value: 6 },
  { kind: 'reorder', mask: 0x003e, value: 8 },
  { kind: 'reorder', mask: 0x003f, value: 10 },
];

/** The kind an IP id falls in, or undefined when the packet passes untouched (for tests and the README's rates). */
export function kindOfIpId(id: number): PacketFaultKind | undefined {
  return SELECTORS.find((s) => (id & s.mask) === s.value)?.kind;
}

/** Share of ids each kind takes. */
export function shareOf(kind: PacketFaultKind): number {
  let n = 0;
  for (let id = 0; id < 65536; id++) if (kindOfIpId(id) === kind) n++;
  return n / 65536;
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(4, '0')}`;
}

const PRIO_BASE = 10;

/** The tc filter command for selector `i` on `dev`'s ingress. */
export function filterCommand(dev: string, i: number): string[] {
  const s = SELECTORS[i];
  const action = s.kind === 'loss' ? ['mirred', 'egress', 'redirect', 'dev', SINK] : s.kind === 'duplicate' ? ['mirred', 'egress', 'mirror', 'dev', DUP_IFB] : ['mirred', 'egress', 'redirect', 'dev', REORDER_IFB];
  return ['tc', 'filter', 'add', 'dev', dev, 'ingress', 'prio', String(PRIO_BASE + i), 'protocol', 'ip', 'u32', 'match', 'ip', 'protocol', '6', '0xff', 'match', 'u16', hex(s.value), hex(s.mask), 'at', '4', 'action', ...action];
}

/** Creates the two ifb devices the duplicate and reorder filters send to (once per topology). */
export function ensureIfbs(): void {
  if (!tryRun(['ip', 'link', 'show', DUP_IFB]).ok) {
    run(['ip', 'link', 'add', DUP_IFB, 'type', 'ifb']);
    run(['ip', 'link', 'set', DUP_IFB, 'up']);
    run(['tc', 'qdisc', 'add', 'dev', DUP_IFB, 'root', 'pfifo', 'limit', '1000']);
  }
  if (!tryRun(['ip', 'link', 'show', REORDER_IFB]).ok) {
    run(['ip', 'link', 'add', REORDER_IFB, 'type', 'ifb']);
    run(['ip', 'link', 'set', REORDER_IFB, 'up']);
    run(['tc', 'qdisc', 'add', 'dev', REORDER_IFB, 'root', 'tbf', 'rate', REORDER_RATE, 'burst', '1600', 'latency', REORDER_QUEUE]);
  }
}

/** The steps that apply the packet faults to `node` (command, undo), for Faults.apply. */
export function packetFaultSteps(node: NetNode): [string[], string[]][] {
  const steps: [string[], string[]][] = [[['tc', 'qdisc', 'add', 'dev', node.hostVeth, 'clsact'], ['tc', 'qdisc', 'del', 'dev', node.hostVeth, 'clsact']]];
  for (let i = 0; i < SELECTORS.length; i++) steps.push([filterCommand(node.hostVeth, i), []]);
  return steps;
}

export type PacketCounts = Record<PacketFaultKind, number>;

/** Packets each kind's filters took on `dev` so far (parsed from `tc -s filter show`). */
export function packetCounts(dev: string): PacketCounts {
  return parseFilterCounts(tryRun(['tc', '-s', 'filter', 'show', 'dev', dev, 'ingress']).stdout);
}

/** Sums "Sent N bytes P pkt" of each filter's action by the kind its prio stands for. */
export function parseFilterCounts(text: string): PacketCounts {
  const counts: PacketCounts = { loss: 0, duplicate: 0, reorder: 0 };
  let kind: PacketFaultKind | undefined;
  for (const line of text.split('\n')) {
    const prio = /filter .*pref (\d+) /.exec(line);
    if (prio !== null) kind = SELECTORS[Number(prio[1]) - PRIO_BASE]?.kind;
    const sent = /^\s*Sent \d+ bytes (\d+) pkt/.exec(line);
    if (sent !== null && kind !== undefined) {
      counts[kind] += Number(sent[1]);
      kind = undefined; // one action per filter; the next "Sent" belongs to another filter
    }
  }
  return counts;
}

/** The reorder bucket's packets held (tbf overlimits), sent and dropped. */
export function reorderBucket(): { sent: number; held: number; dropped: number } {
  const text = tryRun(['tc', '-s', 'qdisc', 'show', 'dev', REORDER_IFB]).stdout;
  const m = /Sent \d+ bytes (\d+) pkt \(dropped (\d+), overlimits (\d+)/.exec(text);
  return m === null ? { sent: 0, held: 0, dropped: 0 } : { sent: Number(m[1]), dropped: Number(m[2]), held: Number(m[3]) };
}

/** The TCP counters of a namespace that show repairs: name -> absolute value. */
export const TCP_REPAIR_COUNTERS = ['TcpRetransSegs', 'TcpExtTCPOFOQueue', 'TcpExtTCPDSACKOldSent', 'TcpExtTCPDSACKRecv'] as const;

export function tcpCounters(netns: string): Map<string, number> {
  return parseNstat(tryRun(inNetns(netns, ['nstat', '-asz'])).stdout);
}

export function parseNstat(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(\w+)\s+(\d+)/.exec(line);
    if (m !== null) out.set(m[1], Number(m[2]));
  }
  return out;
}
