/** S3-S7: the network misbehaves (blackhole, one-way cut, delay, loss, a slow link). */
import { readFileSync } from 'node:fs';
import { MAX_QUEUED_FRAMES } from '../../worker/worker-service';
import { ownerViolations } from '../invariants';
import { detectionMs, latencySummary, reshards } from '../measures';
import { criterion, noViolations, type Criterion, type ScenarioContext } from '../scenario';
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

/** Applies `apply` to every node, runs the requests once, heals. */
async function onceUnder(ctx: ScenarioContext, apply: (node: string) => void, during?: (load: Workload) => Promise<void>): Promise<{ records: RequestRecord[]; faultAtMs: number }> {
  const faultAtMs = ctx.timeline.nowMs();
  const applied = ctx.cluster.pids();
  for (const name of applied.keys()) apply(name);
  const load = ctx.workload();
  const done = load.runOnce(ctx.requests);
  if (during !== undefined) await during(load);
  const records = await done;
  ctx.faults.healAll();
  return { records, faultAtMs };
}

function zeroReshards(ctx: ScenarioContext, fromMs: number): Criterion {
  const n = reshards(ctx.observer.etcd, fromMs, ctx.timeline.nowMs());
  const statusEpochs = ctx.observer.statuses.filter((s) => s.atMs >= fromMs && s.status !== undefined && s.status.planEpoch > ctx.epochBefore).length;
  return criterion('zero reshards', n === 0 && statusEpochs === 0, `plan epoch delta ${n} in etcd; ${statusEpochs} Status replies above epoch ${ctx.epochBefore}`);
}

export const S5 = defineScenario({
  id: 'S5',
  title: '100 +/- 50 ms delay on all links',
  passWhen: 'zero reshards, all succeed, outputs identical (and the latency bound holds)',
  unsupported: (caps) => basicsMissing(caps) ?? missing(caps, ['netem']),
  async run(ctx) {
    const { records, faultAtMs } = await onceUnder(ctx, (node) => ctx.faults.netem(node, ['delay', '100ms', '50ms']));
    // Each decode step crosses coordinator -> stage 1 -> ... -> stage N -> coordinator: N + 1 hops, each delayed once by at most 150 ms.
    const hops = ctx.cluster.workerNames().length + 1;
    const p95 = latencySummary(records).p95Ms;
    return {
      records,
      criteria: [zeroReshards(ctx, faultAtMs), latencyBound(ctx, p95, hops * 150 + 250)],
      extra: { delayedHops: hops },
    };
  },
});

/** p95 inter-token latency under the fault <= the fault-free p95 + `allowanceMs`. */
function latencyBound(ctx: ScenarioContext, p95Ms: number | null, allowanceMs: number): Criterion {
  const base = ctx.referenceLatency.p95Ms ?? 0;
  return criterion('latency bound: p95 inter-token <= fault-free p95 + the added delay', p95Ms !== null && p95Ms <= base + allowanceMs, `p95 ${p95Ms} ms; fault-free ${base} ms + ${allowanceMs} ms allowed`);
}

export const S6 = defineScenario({
  id: 'S6',
  title: '10 % loss, 5 % duplicate / reorder, one TCP reset',
  passWhen: 'all succeed, outputs identical, no reshard',
  unsupported: (caps) => basicsMissing(caps) ?? missing(caps, ['netem', 'tcpReset']),
  async run(ctx) {
    const first = await stageWorker(ctx, 0);
    const coordinator = ctx.cluster.coordinatorNames()[0];
    let resets = 0;
    const { records, faultAtMs } = await onceUnder(
      ctx,
      (node) => ctx.faults.netem(node, ['delay', '5ms', 'reorder', '5%', 'loss', '10%', 'duplicate', '5%']),
      async (load) => {
        await load.untilTokens(quarterOfTokens(ctx));
        resets = ctx.faults.tcpReset(coordinator, first.name);
      },
    );
    return {
      records,
      criteria: [zeroReshards(ctx, faultAtMs), criterion('one TCP reset was injected', resets > 0, `${resets} connection(s) ${coordinator} -> ${first.name} reset`)],
      extra: { resetConnections: resets },
    };
  },
});

const LONG_PROMPT_TOKENS = 1024;
const RATE = '5mbit';
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
    const records = await ctx.workload().runOnce(ctx.requests);
    ctx.faults.heal(limit);
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
      ],
      extra: { rateLimited: `${target.name} (${RATE})`, reshards: reshards(ctx.observer.etcd, faultAtMs, ctx.timeline.nowMs()) },
    };
  },
});
