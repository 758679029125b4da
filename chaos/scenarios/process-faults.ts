/** S1, S2, S9: a process dies or freezes mid-generation (a stage worker; the leading coordinator). */
import { dualLeaderViolations, nonRetryableErrors } from '../invariants';
import { detectionMs, recoveryMs } from '../measures';
import { probeStaleFrame, type ProbeOutcome } from '../probe';
import { criterion, noViolations, type Criterion, type ScenarioContext } from '../scenario';
import { sleep } from '../timeline';
import { defineScenario, memberLease, memberRejoinedAt, ms, onceToMidGeneration, servingAgainAt, stageWorker, waitUntil } from './helpers';

const REJOIN_WAIT_MS = 15_000;

function newPlanCriterion(ctx: ScenarioContext, faultAtMs: number): Criterion {
  const bound = ctx.env.leaseTtlMs + 1000;
  const detection = detectionMs(ctx.observer.statuses, faultAtMs, ctx.epochBefore);
  return criterion(`new plan (epoch ${ctx.epochBefore + 1}+) within TTL + 1 s`, detection !== undefined && detection <= bound, `seen in Status after ${ms(detection)} (bound ${bound} ms)`);
}

function describeProbe(p: ProbeOutcome): string {
  switch (p.kind) {
    case 'refused':
      return `refused (code ${p.code}): ${p.message}`;
    case 'accepted':
      return 'ACCEPTED the stale frame';
    case 'no-answer':
      return `no ack: ${p.message}`;
  }
}

export const S1 = defineScenario({
  id: 'S1',
  title: 'SIGKILL a stage worker mid-generation',
  passWhen: 'all streams complete, byte-identical to the fault-free run, no duplicate or missing token; new plan (epoch+1) within TTL + 1 s',
  async run(ctx) {
    const target = await stageWorker(ctx, 'middle');
    const load = ctx.workload();
    const { done } = await onceToMidGeneration(ctx, load);
    const faultAtMs = ctx.faults.kill(target.name);
    const records = await done;
    await waitUntil(ctx, ctx.env.leaseTtlMs + 2000, () => detectionMs(ctx.observer.statuses, faultAtMs, ctx.epochBefore) !== undefined);
    const recovery = recoveryMs(load.arrivalTimesMs(), faultAtMs, Infinity);
    const recoveryBound = ctx.env.leaseTtlMs + 2000;
    const plans = ctx.observer.plans();
    const latest = plans.get(Math.max(...plans.keys()));
    const stillPlanned = latest?.stages.some((s) => s.workers.includes(target.name as never)) ?? true;
    return {
      records,
      faultAtMs,
      criteria: [
        newPlanCriterion(ctx, faultAtMs),
        criterion('recovery (fault -> next token after the stall) within TTL + 2 s (issue 4)', recovery !== undefined && recovery <= recoveryBound, `${ms(recovery)} (bound ${recoveryBound} ms)`),
        criterion('the new plan leaves the killed worker out', !stillPlanned, `latest plan ${latest?.epoch}: ${latest?.stages.map((s) => `${s.workers[0]}[${s.range.start},${s.range.end})`).join(' ')}`),
      ],
      extra: { killed: target.name, killedStage: target.stageIndex },
    };
  },
});

export const S2 = defineScenario({
  id: 'S2',
  title: 'SIGSTOP a worker for 2 x TTL, then SIGCONT',
  passWhen: 'reshard as S1; the resumed worker accepts zero stale-epoch frames and rejoins with a new lease',
  async run(ctx) {
    const target = await stageWorker(ctx, 'middle');
    const address = ctx.cluster.apiAddress(target.name);
    const oldLease = memberLease(ctx.observer.etcd, target.name, ctx.timeline.nowMs());
    const load = ctx.workload();
    const { done } = await onceToMidGeneration(ctx, load);
    const faultAtMs = ctx.faults.pause(target.name);
    await sleep(2 * ctx.env.leaseTtlMs);
    const resumedAtMs = ctx.faults.resume(target.name);
    // At once: the worker still holds the old epoch's stage; its lease has expired meanwhile.
    const rightAfter = await probeStaleFrame(address, ctx.epochBefore, target.stageIndex, ctx.env.hiddenSize);
    const records = await done;
    const rejoined = await waitUntil(ctx, REJOIN_WAIT_MS, () => memberRejoinedAt(ctx.observer.etcd, target.name, resumedAtMs, oldLease) !== undefined);
    const rejoinedAt = memberRejoinedAt(ctx.observer.etcd, target.name, resumedAtMs, oldLease);
    const serving = await waitUntil(ctx, REJOIN_WAIT_MS, () => servingAgainAt(ctx.observer.workers, target.name, resumedAtMs, ctx.epochBefore) !== undefined);
    // After rejoining it serves a newer epoch; the old one must still be refused.
    const later = await probeStaleFrame(address, ctx.epochBefore, target.stageIndex, ctx.env.hiddenSize);
    const rejected = ctx.observer.metrics.filter((m) => m.node === target.name && m.atMs > resumedAtMs).at(-1)?.values;
    const recovery = recoveryMs(load.arrivalTimesMs(), faultAtMs, resumedAtMs);
    return {
      records,
      faultAtMs,
      recoveryWindowEndMs: resumedAtMs,
      criteria: [
        newPlanCriterion(ctx, faultAtMs),
        criterion('the resumed worker refuses a stale-epoch frame at once', rightAfter.kind === 'refused', describeProbe(rightAfter)),
        criterion('the worker rejoins with a new lease', rejoined !== undefined, `re-registered on a new lease ${ms(rejoinedAt === undefined ? undefined : rejoinedAt - resumedAtMs)} after SIGCONT (old lease ${oldLease ?? 'unknown'})`),
        criterion('after rejoining it still refuses the stale epoch', later.kind === 'refused', describeProbe(later)),
      ],
      extra: {
        paused: target.name,
        recoveryBeforeResumeMs: recovery === undefined ? null : Math.round(recovery),
        rejoinAfterResumeMs: rejoinedAt === undefined ? null : Math.round(rejoinedAt - resumedAtMs),
        servingAgainAfterResumeMs: serving === undefined ? null : Math.round(serving - resumedAtMs),
        framesRejectedStaleEpoch: rejected?.get('bora_frames_rejected_total{reason=stale_epoch}') ?? null,
        framesRejectedNotServing: rejected?.get('bora_frames_rejected_total{reason=not_serving}') ?? null,
      },
    };
  },
});

export const S9 = defineScenario({
  id: 'S9',
  title: 'SIGKILL the active coordinator',
  passWhen: 'standby takes over; in-flight streams complete or fail UNAVAILABLE and succeed on retry',
  topology: { workers: 3, coordinators: 2 },
  client: { retryMidStream: true },
  async run(ctx) {
    const leader = await ctx.cluster.leaderStatus();
    if (leader === undefined) throw new Error('no coordinator serves');
    const standby = ctx.cluster.coordinatorNames().find((n) => n !== leader.name)!;
    const load = ctx.workload();
    const { done } = await onceToMidGeneration(ctx, load);
    const faultAtMs = ctx.faults.kill(leader.name);
    const takeoverBound = ctx.env.leaseTtlMs + 1000;
    const takeover = (): number | undefined => ctx.observer.statuses.find((s) => s.coordinator === standby && s.atMs > faultAtMs && s.status?.serving === true)?.atMs;
    await waitUntil(ctx, 4 * ctx.env.leaseTtlMs + 10_000, () => takeover() !== undefined);
    const records = await done;
    const takeoverMs = takeover() === undefined ? undefined : takeover()! - faultAtMs;
    const brokenAttempts = records.reduce((n, r) => n + r.attempts.filter((a) => !a.finished).length, 0);
    const lastByWorker = new Map<string, number>();
    for (const s of ctx.observer.workers) if (s.reply !== undefined && s.atMs > faultAtMs) lastByWorker.set(s.worker, s.reply.planEpoch);
    const epochs = [...new Set(lastByWorker.values())];
    const finalEpoch = Math.max(0, ...ctx.observer.plans().keys());
    return {
      records,
      faultAtMs,
      detectionMs: takeoverMs === undefined ? null : Math.round(takeoverMs),
      criteria: [
        criterion('the standby takes over within TTL + 1 s', takeoverMs !== undefined && takeoverMs <= takeoverBound, `${standby} served ${ms(takeoverMs)} after ${leader.name} was killed (bound ${takeoverBound} ms)`),
        noViolations('every failed attempt failed UNAVAILABLE (and was retried)', nonRetryableErrors(records), `${brokenAttempts} attempt(s) failed, all UNAVAILABLE`),
        noViolations('at most one coordinator serving at any instant', dualLeaderViolations(ctx.observer.statuses), 'never two'),
        criterion(
          'workers serve one coordinator epoch: the new leader\'s, above the old',
          epochs.length === 1 && epochs[0] === finalEpoch && finalEpoch > ctx.epochBefore,
          `workers' last epochs: ${[...lastByWorker].map(([w, e]) => `${w}@${e}`).join(' ')}; latest plan ${finalEpoch}; before the kill ${ctx.epochBefore}`,
        ),
      ],
      extra: { killed: leader.name, standby, failedAttempts: brokenAttempts },
    };
  },
});
