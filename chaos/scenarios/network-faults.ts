/**
 * S3-S7: the network misbehaves (blackhole, one-way cut, delay, loss, a slow link). Without
 * sch_netem, S5's delay is made in fault proxies on every link (fault-proxy.ts) and S6's loss,
 * duplication and reordering on real packets with tc filters (packet-faults.ts); each proves
 * from counters that its fault was in effect.
 */
import { readFileSync } from 'node:fs';
import { MAX_QUEUED_FRAMES } from '../../worker/worker-service';
import { ownerViolations } from '../invariants';
import { detectionMs, latencySummary, reshards } from '../measures';
import type { ProxyFaults, ProxyStats } from '../fault-proxy';
import { LinkMeter, parseRateBitsPerS, peakRatesBitsPerS, type LinkSample } from '../link-meter';
import { packetCounts, reorderBucket, TCP_REPAIR_COUNTERS, tcpCounters } from '../packet-faults';
import { inNetns, tryRun } from '../shell';
import { criterion, noViolations, type Criterion, type Extra, type ScenarioContext } from '../scenario';
import { sleep } from '../timeline';
import { makeRequests, type RequestRecord, type Workload } from '../workload';
import { defineScenario, lanesUnderWay, lastServingBefore, memberDeletedAt, memberLease, memberRejoinedAt, ms, quarterOfTokens, servingAgainAt, stageWorker, waitUntil } from './helpers';
import { basicsMissing, blackholeMissing, missing } from './requirements';

const BLACKHOLE_MS = 10_000;
const REJOIN_WAIT_MS = 15_000;
/** How long after a heal lanes keep running, so the rejoin's own re-plan is exercised under load. */
const AFTER_HEAL_LOAD_MS = 2000;

/** Time of the coordinator's first log line after `afterMs` reporting a broken data path. */
function dataPathBrokenLoggedAt(ctx: ScenarioContext, afterMs: number): number | undefined {
  for (const name of ctx.cluster.coordinatorNames()) {
    let text: string;
    try {
      text = readFileSync(ctx.cluster.logFile(name), 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      const m = /^\s*(\d+\.\d+) s .*(data path .*fail|failed|broke)/.exec(line);
      if (m !== null && Number(m[1]) * 1000 >= afterMs) return Number(m[1]) * 1000;
    }
  }
  return undefined;
}

/** When a plan without `worker` was first put in etcd after `afterMs`. */
function excludedAt(ctx: ScenarioContext, worker: string, afterMs: number): number | undefined {
  return ctx.observer.etcd.find((e) => e.type === 'put' && e.plan !== undefined && e.atMs >= afterMs && !e.plan.stages.some((s) => s.workers.includes(worker as never)))?.atMs;
}

function since(at: number | undefined, from: number): number | null {
  return at === undefined ? null : Math.round(at - from);
}

export const S3 = defineScenario({
  id: 'S3',
  title: 'Blackhole one worker for 10 s, then heal',
  passWhen: 'detected within 2 s; outputs identical; worker rejoins within 5 s of healing',
  unsupported: blackholeMissing,
  async run(ctx) {
    const target = await stageWorker(ctx, 'middle');
    const oldLease = memberLease(ctx.observer.etcd, target.name, ctx.timeline.nowMs());
    const load = ctx.workload();
    const { done: lanes } = await lanesUnderWay(ctx, load);
    const hole = ctx.faults.blackhole(target.name);
    const faultAtMs = ctx.timeline.nowMs();
    await sleep(BLACKHOLE_MS);
    const healedAtMs = ctx.faults.heal(hole);
    await waitUntil(ctx, REJOIN_WAIT_MS, () => memberRejoinedAt(ctx.observer.etcd, target.name, healedAtMs, oldLease) !== undefined);
    await waitUntil(ctx, REJOIN_WAIT_MS, () => servingAgainAt(ctx.observer.workers, target.name, healedAtMs, ctx.epochBefore) !== undefined);
    await sleep(AFTER_HEAL_LOAD_MS);
    load.stop();
    const records = await lanes;
    const detection = detectionMs(ctx.observer.statuses, faultAtMs, ctx.epochBefore);
    const rejoinedAt = memberRejoinedAt(ctx.observer.etcd, target.name, healedAtMs, oldLease);
    const rejoinMs = rejoinedAt === undefined ? undefined : rejoinedAt - healedAtMs;
    return {
      records,
      faultAtMs,
      recoveryWindowEndMs: healedAtMs,
      criteria: [
        criterion('detected within 2 s (new plan epoch in Status)', detection !== undefined && detection <= 2000, `after ${ms(detection)}`),
        criterion('the worker rejoins within 5 s of healing', rejoinMs !== undefined && rejoinMs <= 5000, `re-registered on a new lease ${ms(rejoinMs)} after the heal`),
      ],
      extra: {
        blackholed: target.name,
        dataPathBrokenLoggedAfterMs: since(dataPathBrokenLoggedAt(ctx, faultAtMs), faultAtMs),
        planWithoutWorkerAfterMs: since(excludedAt(ctx, target.name, faultAtMs), faultAtMs),
        leaseExpiredAfterMs: since(memberDeletedAt(ctx.observer.etcd, target.name, faultAtMs), faultAtMs),
        servingAgainAfterHealMs: since(servingAgainAt(ctx.observer.workers, target.name, healedAtMs, ctx.epochBefore), healedAtMs),
      },
    };
  },
});

export const S4 = defineScenario({
  id: 'S4',
  title: 'Cut worker -> etcd only',
  passWhen: 'at every instant at most one serving owner per layer range; outputs identical',
  unsupported: (caps) => basicsMissing(caps) ?? missing(caps, ['tcDrop']),
  async run(ctx) {
    const target = await stageWorker(ctx, 'middle');
    const oldLease = memberLease(ctx.observer.etcd, target.name, ctx.timeline.nowMs());
    const load = ctx.workload();
    const { done: lanes } = await lanesUnderWay(ctx, load);
    const cut = ctx.faults.cut(target.name, 'etcd');
    const faultAtMs = ctx.timeline.nowMs();
    await sleep(2 * ctx.env.leaseTtlMs + 4000);
    const healedAtMs = ctx.faults.heal(cut);
    await waitUntil(ctx, REJOIN_WAIT_MS, () => memberRejoinedAt(ctx.observer.etcd, target.name, healedAtMs, oldLease) !== undefined);
    await sleep(AFTER_HEAL_LOAD_MS);
    load.stop();
    const records = await lanes;

    const events = ctx.observer.etcd;
    const deletedAt = memberDeletedAt(events, target.name, faultAtMs);
    const rejoinedAt = memberRejoinedAt(events, target.name, healedAtMs, oldLease);
    const samples = ctx.observer.workers.filter((s) => s.atMs >= faultAtMs - 1000);
    const owners = ownerViolations(samples, events, 1000);
    const lastServing = lastServingBefore(ctx.observer.workers, target.name, faultAtMs, deletedAt ?? healedAtMs);
    const fenced = ctx.observer.workers.find((s) => s.worker === target.name && s.atMs > faultAtMs && s.reply?.serving === false);
    const fencedBeforeExpiry = deletedAt !== undefined && fenced !== undefined && fenced.atMs < deletedAt && (lastServing === undefined || lastServing.atMs < deletedAt);
    const computedAfterExpiry = framesComputedBetween(ctx, target.name, deletedAt === undefined ? undefined : deletedAt + 500, rejoinedAt ?? healedAtMs);
    const criteria: Criterion[] = [
      noViolations('at most one serving owner per layer range at every sampled instant', owners.violations, `${samples.length} worker samples; ${owners.handovers} hand-over overlap(s) between members of different epochs`),
      criterion(
        'the cut worker stopped serving before its lease expired (self-fencing)',
        fencedBeforeExpiry,
        `last "serving" sample ${ms(lastServing === undefined ? undefined : lastServing.atMs - faultAtMs)}, first "not serving" ${ms(fenced === undefined ? undefined : fenced.atMs - faultAtMs)}, member key deleted ${ms(deletedAt === undefined ? undefined : deletedAt - faultAtMs)} after the cut`,
      ),
      criterion(
        'the cut worker computed no frame after its lease expired',
        computedAfterExpiry === 0,
        computedAfterExpiry === undefined ? 'no metrics to tell (lease never expired or no scrape)' : `${computedAfterExpiry} forward pass(es) counted between expiry and rejoin`,
      ),
    ];
    return {
      records,
      faultAtMs,
      recoveryWindowEndMs: healedAtMs,
      criteria,
      extra: {
        cut: `${target.name} -> etcd`,
        fencedAfterMs: since(fenced?.atMs, faultAtMs),
        leaseExpiredAfterMs: since(deletedAt, faultAtMs),
        rejoinAfterHealMs: since(rejoinedAt, healedAtMs),
        handoverOverlaps: owners.handovers,
      },
    };
  },
});

/** Forward passes (bora_stage_forward_seconds_count) `worker` made in [fromMs, toMs]; undefined without two scrapes. */
function framesComputedBetween(ctx: ScenarioContext, worker: string, fromMs: number | undefined, toMs: number): number | undefined {
  if (fromMs === undefined) return undefined;
  const counts = ctx.observer.metrics.filter((m) => m.node === worker && m.atMs >= fromMs && m.atMs <= toMs).map((m) => m.values.get('bora_stage_forward_seconds_count') ?? 0);
  return counts.length < 2 ? undefined : Math.max(...counts) - Math.min(...counts);
}

/** Applies `apply` to each of `nodes`, runs the requests once, calls `beforeHeal`, heals. */
async function onceUnder(
  ctx: ScenarioContext,
  nodes: readonly string[],
  apply: (node: string) => void,
  during?: (load: Workload) => Promise<void>,
  beforeHeal?: () => void,
): Promise<{ records: RequestRecord[]; faultAtMs: number }> {
  const faultAtMs = ctx.timeline.nowMs();
  for (const name of nodes) apply(name);
  const load = ctx.workload();
  const done = load.runOnce(ctx.requests);
  // `during` may wait for tokens that never come (the requests failed first): it does not hold the run.
  if (during !== undefined) await Promise.race([during(load), done]);
  const records = await done;
  beforeHeal?.();
  ctx.faults.healAll();
  return { records, faultAtMs };
}

function zeroReshards(ctx: ScenarioContext, fromMs: number): Criterion {
  const n = reshards(ctx.observer.etcd, fromMs, ctx.timeline.nowMs());
  const statusEpochs = ctx.observer.statuses.filter((s) => s.atMs >= fromMs && s.status !== undefined && s.status.planEpoch > ctx.epochBefore).length;
  return criterion('zero reshards', n === 0 && statusEpochs === 0, `plan epoch delta ${n} in etcd; ${statusEpochs} Status replies above epoch ${ctx.epochBefore}`);
}

/** A proxy that wrote a chunk this much after its due time did not apply the fault asked for. */
const MAX_PROXY_LATE_MS = 100;

/** S5's delay on every link: 100 +/- 50 ms each way (FAULTS.md's `netem delay 100ms 50ms`). */
export const S5_DELAY: ProxyFaults = { delayMs: 100, jitterMs: 50 };

export const S5 = defineScenario({
  id: 'S5',
  title: '100 +/- 50 ms delay on all links',
  passWhen: 'zero reshards, all succeed, outputs identical (and the latency bound holds)',
  // The delay is made in the fault proxies (fault-proxy.ts): it needs no tc feature at all.
  topology: { workers: 3, coordinators: 1, proxied: true },
  async run(ctx) {
    const nodes = ctx.cluster.proxiedNodes();
    const before = new Map(nodes.map((n) => [n, ctx.cluster.proxy(n).stats()]));
    const { records, faultAtMs } = await onceUnder(ctx, nodes, (node) => ctx.faults.proxyDelay(node, S5_DELAY));
    const after = new Map(nodes.map((n) => [n, ctx.cluster.proxy(n).stats()]));
    // Each decode step crosses coordinator -> stage 1 -> ... -> stage N -> coordinator: N + 1
    // hops, each through one proxy and delayed once by at most delay + jitter; the token then
    // crosses the coordinator's proxy to the client, whose jitter moves gaps by up to 2 x jitter.
    const hops = ctx.cluster.workerNames().length + 1;
    const worst = S5_DELAY.delayMs + S5_DELAY.jitterMs;
    const p95 = latencySummary(records).p95Ms;
    return {
      records,
      criteria: [
        zeroReshards(ctx, faultAtMs),
        latencyBound(ctx, p95, hops * worst + 2 * S5_DELAY.jitterMs + 250),
        delayApplied(before, after, S5_DELAY),
        latencyRose(ctx, p95, S5_DELAY.delayMs - S5_DELAY.jitterMs),
      ],
      extra: { delayedHops: hops, ...proxyExtra(before, after) },
    };
  },
});

/** Every proxy delayed chunks during the run, each delay within [delay - jitter, delay + jitter]. */
export function delayApplied(before: ReadonlyMap<string, ProxyStats>, after: ReadonlyMap<string, ProxyStats>, faults: ProxyFaults): Criterion {
  const lo = faults.delayMs - faults.jitterMs;
  const hi = faults.delayMs + faults.jitterMs;
  const violations: string[] = [];
  const parts: string[] = [];
  for (const [node, a] of after) {
    const delayed = a.chunksDelayed - (before.get(node)?.chunksDelayed ?? 0);
    parts.push(`${node} ${delayed} chunks ${a.minDelayMs?.toFixed(0) ?? '-'}..${a.maxDelayMs?.toFixed(0) ?? '-'} ms (+ up to ${a.maxLateMs.toFixed(0)} ms late)`);
    if (delayed <= 0) violations.push(`${node}: no chunk delayed`);
    else if (a.minDelayMs! < lo || a.maxDelayMs! > hi) violations.push(`${node}: delays ${a.minDelayMs!.toFixed(1)}..${a.maxDelayMs!.toFixed(1)} ms outside [${lo}, ${hi}]`);
    else if (a.maxLateMs > MAX_PROXY_LATE_MS) violations.push(`${node}: a chunk was written ${a.maxLateMs.toFixed(0)} ms after its due time (the harness's event loop was starved: the link had more delay than the fault's)`);
  }
  return noViolations(`the delay was applied on every link, as asked (proxy counters; each delay within [${lo}, ${hi}] ms, none more than ${MAX_PROXY_LATE_MS} ms late)`, violations, parts.join(', '));
}

/** The fault is visible in the tokens: the p95 inter-token gap grew by at least `minMs`. */
function latencyRose(ctx: ScenarioContext, p95Ms: number | null, minMs: number): Criterion {
  const base = ctx.referenceLatency.p95Ms ?? 0;
  return criterion(`the delay reached the data path: p95 inter-token >= fault-free p95 + ${minMs} ms`, p95Ms !== null && p95Ms >= base + minMs, `p95 ${p95Ms} ms; fault-free ${base} ms`);
}

function proxyExtra(before: ReadonlyMap<string, ProxyStats>, after: ReadonlyMap<string, ProxyStats>): Extra {
  const extra: Extra = {};
  for (const [node, a] of after) {
    const b = before.get(node);
    extra[`proxy_${node}`] = `${a.chunksDelayed - (b?.chunksDelayed ?? 0)} chunks delayed, ${a.bytesForwarded - (b?.bytesForwarded ?? 0)} bytes, ${a.connections} connections, resets ${a.resets}, written up to ${a.maxLateMs.toFixed(0)} ms after due`;
  }
  return extra;
}

/** p95 inter-token latency under the fault <= the fault-free p95 + `allowanceMs`. */
function latencyBound(ctx: ScenarioContext, p95Ms: number | null, allowanceMs: number): Criterion {
  const base = ctx.referenceLatency.p95Ms ?? 0;
  return criterion('latency bound: p95 inter-token <= fault-free p95 + the added delay', p95Ms !== null && p95Ms <= base + allowanceMs, `p95 ${p95Ms} ms; fault-free ${base} ms + ${allowanceMs} ms allowed`);
}

/** TCP repair counters summed over `nodes` (absolute). */
function sumTcpCounters(ctx: ScenarioContext, nodes: readonly string[]): Map<string, number> {
  const sum = new Map<string, number>();
  for (const n of nodes) for (const [k, v] of tcpCounters(ctx.cluster.node(n).netns)) sum.set(k, (sum.get(k) ?? 0) + v);
  return sum;
}

export const S6 = defineScenario({
  id: 'S6',
  title: '10 % loss, 5 % duplicate / reorder, one TCP reset',
  passWhen: 'all succeed, outputs identical, no reshard',
  // One MTU packet per skb from the start, so the packet faults take packets, not 64 KiB bursts.
  topology: { workers: 3, coordinators: 1, singlePacketSkbs: true },
  unsupported: (caps) => basicsMissing(caps) ?? missing(caps, ['tcpReset']) ?? (caps.packetFaults.ok || caps.netem.ok ? undefined : `needs packetFaults or netem: ${caps.packetFaults.ok ? '' : caps.packetFaults.reason}`),
  async run(ctx) {
    const first = await stageWorker(ctx, 0);
    const coordinator = ctx.cluster.coordinatorNames()[0];
    const nodes = [...ctx.cluster.pids().keys()];
    const kernel = ctx.env.caps.packetFaults.ok ? 'packet-faults' : 'netem';
    let resets = 0;
    const taken = { loss: 0, duplicate: 0, reorder: 0 };
    const bucket = { sent: 0, held: 0, dropped: 0 };
    const tcpBefore = sumTcpCounters(ctx, nodes);
    const { records, faultAtMs } = await onceUnder(
      ctx,
      nodes,
      (node) => (kernel === 'packet-faults' ? ctx.faults.packetFaults(node) : ctx.faults.netem(node, ['delay', '5ms', 'reorder', '5%', 'loss', '10%', 'duplicate', '5%'])),
      async (load) => {
        await load.untilTokens(quarterOfTokens(ctx));
        resets = ctx.faults.tcpReset(coordinator, first.name);
      },
      () => {
        // Counters are read before the heal removes the filters.
        for (const n of nodes) {
          const c = packetCounts(ctx.cluster.node(n).hostVeth);
          for (const k of ['loss', 'duplicate', 'reorder'] as const) taken[k] += c[k];
        }
        Object.assign(bucket, reorderBucket());
      },
    );
    const tcpAfter = sumTcpCounters(ctx, nodes);
    const delta = (k: string): number => (tcpAfter.get(k) ?? 0) - (tcpBefore.get(k) ?? 0);
    const repairs = TCP_REPAIR_COUNTERS.map((k) => `${k} +${delta(k)}`).join(', ');
    const criteria: Criterion[] = [zeroReshards(ctx, faultAtMs), criterion('one TCP reset was injected', resets > 0, `${resets} connection(s) ${coordinator} -> ${first.name} reset`)];
    if (kernel === 'packet-faults') {
      criteria.push(
        criterion(
          'every packet fault was applied (tc action counters): packets lost, duplicated and reordered',
          taken.loss > 0 && taken.duplicate > 0 && taken.reorder > 0 && bucket.held > 0,
          `over ${nodes.length} links: ${taken.loss} dropped, ${taken.duplicate} duplicated, ${taken.reorder} diverted to the reorder bucket (${bucket.held} held behind later packets, ${bucket.dropped} lost there)`,
        ),
      );
    }
    criteria.push(
      criterion(
        "the nodes' TCP repaired the faults (nstat): retransmissions, out-of-order and duplicate segments",
        delta('TcpRetransSegs') > 0 && delta('TcpExtTCPOFOQueue') > 0 && delta('TcpExtTCPDSACKOldSent') > 0,
        repairs,
      ),
    );
    return {
      records,
      criteria,
      extra: { resetConnections: resets, injection: kernel, ...taken, reorderHeld: bucket.held, reorderLost: bucket.dropped, tcpRepairs: repairs },
    };
  },
});

const LONG_PROMPT_TOKENS = 1024;
const RATE = '5mbit';
/** S7 samples the limited link's counters this often, and takes its peak over this window. */
const LINK_SAMPLE_MS = 250;
const PEAK_WINDOW_MS = 2000;
/** Measured peak may exceed the limit by this much (counters include L2 headers, tbf's burst). */
const RATE_TOLERANCE = 1.15;
/** The link counts as held at the limit when its peak reached this share of it. */
const SATURATION_SHARE = 0.6;
/** Headroom over the fault-free run's peak resident memory before memory counts as unbounded. */
const MEMORY_HEADROOM_BYTES = 256 * 1024 * 1024;

export const S7 = defineScenario({
  id: 'S7',
  title: '5 mbit link, prompts >= 1024 tokens',
  passWhen: 'bounded memory, all succeed (no RESOURCE_EXHAUSTED)',
  client: { retryMidStream: false, deadlineMs: 600_000 },
  unsupported: (caps) => basicsMissing(caps) ?? (caps.netem.ok || caps.tbf.ok ? undefined : `a rate limit needs netem or tbf: ${caps.tbf.ok ? '' : caps.tbf.reason}`),
  requests: (env) => makeRequests(16, LONG_PROMPT_TOKENS, 8, env.short ? 16 : 64, env.vocabSize, env.seed),
  async run(ctx) {
    // The middle stage's link carries hidden states both ways (the last stage's logits would
    // make the run take minutes at 5 mbit without testing anything more).
    const target = await stageWorker(ctx, 'middle');
    const faultAtMs = ctx.timeline.nowMs();
    const limit = ctx.faults.rateLimit(target.name, RATE);
    const dev = ctx.cluster.node(target.name).hostVeth;
    const meter = new LinkMeter(dev, () => ctx.timeline.nowMs(), LINK_SAMPLE_MS);
    const records = await ctx.workload().runOnce(ctx.requests);
    const samples = meter.stop();
    const held = rateLimiterHeld(target.name, ctx);
    ctx.faults.heal(limit);
    const slowed = rateCriteria(samples, ctx.referenceLinks.get(target.name) ?? [], held);
    const { fromMs, toMs } = ctx.referenceWindowMs;
    const peak = (node: string, from: number, to: number): number => Math.max(0, ...ctx.observer.rss.filter((s) => s.node === node && s.atMs >= from && s.atMs <= to).map((s) => s.rssBytes));
    const nodes = [...ctx.cluster.pids().keys()];
    const over = nodes.filter((n) => peak(n, faultAtMs, ctx.timeline.nowMs()) > peak(n, fromMs, toMs) + MEMORY_HEADROOM_BYTES);
    const mib = (b: number): string => `${Math.round(b / 1048576)}`;
    const peaks = nodes.map((n) => `${n} ${mib(peak(n, fromMs, toMs))}->${mib(peak(n, faultAtMs, ctx.timeline.nowMs()))}`).join(', ');
    const queue = Math.max(0, ...ctx.observer.metrics.filter((m) => m.atMs >= faultAtMs).map((m) => m.values.get('bora_stage_queue_depth') ?? 0));
    const exhausted = records.flatMap((r) => r.attempts).filter((a) => a.error?.code === 'RESOURCE_EXHAUSTED').length;
    return {
      records,
      criteria: [
        criterion('bounded memory: every peak RSS within the fault-free peak + 256 MiB', over.length === 0, `peak RSS MiB (fault-free -> slow link): ${peaks}`),
        criterion('backpressure: stage queues within MAX_QUEUED_FRAMES', queue <= MAX_QUEUED_FRAMES, `max sampled queue depth ${queue} (limit ${MAX_QUEUED_FRAMES})`),
        criterion('no RESOURCE_EXHAUSTED', exhausted === 0, `${exhausted} attempt(s) failed RESOURCE_EXHAUSTED`),
        ...slowed.criteria,
      ],
      extra: { rateLimited: `${target.name} (${RATE})`, reshards: reshards(ctx.observer.etcd, faultAtMs, ctx.timeline.nowMs()), ...slowed.extra },
    };
  },
});

/** Packets the rate limiter on each end of `node`'s link had to hold back (tbf/netem overlimits), read before the heal. */
function rateLimiterHeld(node: string, ctx: ScenarioContext): number {
  const n = ctx.cluster.node(node);
  const overlimits = (argv: string[]): number => Number(/overlimits (\d+)/.exec(tryRun(argv).stdout)?.[1] ?? 0);
  return overlimits(['tc', '-s', 'qdisc', 'show', 'dev', n.hostVeth]) + overlimits(inNetns(n.netns, ['tc', '-s', 'qdisc', 'show', 'dev', n.nodeVeth]));
}

/**
 * The limit slowed the link: without it the link's busiest direction ran above the limit (peak
 * over PEAK_WINDOW_MS in the fault-free run > RATE_TOLERANCE x the limit); with it, both
 * directions stayed within RATE_TOLERANCE x the limit, the busiest reached SATURATION_SHARE of
 * it (the limit, not the load, set the pace), and the limiter held packets back.
 */
function rateCriteria(samples: readonly LinkSample[], reference: readonly LinkSample[], heldPackets: number): { criteria: Criterion[]; extra: Extra } {
  const limitBits = parseRateBitsPerS(RATE);
  const peak = peakRatesBitsPerS(samples, PEAK_WINDOW_MS);
  const free = peakRatesBitsPerS(reference, PEAK_WINDOW_MS);
  const busiest = Math.max(peak.toNode, peak.fromNode);
  const freeBusiest = Math.max(free.toNode, free.fromNode);
  const mbit = (b: number): string => (b / 1e6).toFixed(2);
  return {
    criteria: [
      criterion(
        `the rate limit held the link: peak ${PEAK_WINDOW_MS / 1000} s throughput within ${RATE_TOLERANCE} x the limit`,
        peak.toNode <= limitBits * RATE_TOLERANCE && peak.fromNode <= limitBits * RATE_TOLERANCE,
        `peak to the node ${mbit(peak.toNode)} mbit/s, from it ${mbit(peak.fromNode)} mbit/s; limit ${mbit(limitBits)} mbit/s`,
      ),
      criterion(
        `the rate limit slowed the link: fault-free peak above ${RATE_TOLERANCE} x the limit, limited peak >= ${SATURATION_SHARE} x it, packets held by the limiter`,
        freeBusiest > limitBits * RATE_TOLERANCE && busiest >= limitBits * SATURATION_SHARE && heldPackets > 0,
        `busiest direction ${mbit(freeBusiest)} mbit/s fault-free -> ${mbit(busiest)} mbit/s limited (limit ${mbit(limitBits)}); ${heldPackets} packet(s) held by the limiter`,
      ),
    ],
    extra: { peakToNodeMbit: Number(mbit(peak.toNode)), peakFromNodeMbit: Number(mbit(peak.fromNode)), faultFreePeakMbit: Number(mbit(freeBusiest)), limiterHeldPackets: heldPackets },
  };
}
