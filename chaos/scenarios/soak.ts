/** S0 (fault-free soak), S8 (etcd crash and restart), S10 (random faults for minutes). */
import { readFileSync } from 'node:fs';
import type { Capabilities } from '../capabilities';
import { epochOrderViolations, memberIntervals } from '../invariants';
import { auditLeases } from '../leases';
import { detectionMs, longestStallMs, recoveryMs, reshards } from '../measures';
import { criterion, noViolations, type Criterion, type ScenarioContext } from '../scenario';
import { sleep } from '../timeline';
import { seededRandom } from '../workload';
import { defineScenario, lanesUnderWay, ms, waitUntil } from './helpers';

const SOAK_MS = 60_000;
const SOAK_SHORT_MS = 20_000;
/** S0's load condition: the cluster keeps both cores (the whole machine) at least this busy. */
const BUSY_CPU_PERCENT = 60;
const ETCD_OUTAGE_MS = 5000;
/** During the etcd outage no gap between tokens (all streams together) may exceed this. */
const OUTAGE_STALL_BOUND_MS = 1000;

/** Busy / total jiffies of all CPUs, from /proc/stat. */
function cpuTimes(): { busy: number; total: number } {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = fields[3] + (fields[4] ?? 0);
  const total = fields.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

/** No worker lost its lease in [fromMs, toMs]: no member key deleted, none moved to a new lease, every sample serving. */
function leaseLossViolations(ctx: ScenarioContext, fromMs: number, toMs: number): string[] {
  const out: string[] = [];
  for (const worker of ctx.cluster.workerNames()) {
    const intervals = memberIntervals(ctx.observer.etcd, worker).filter((i) => i.toMs >= fromMs && i.fromMs <= toMs);
    if (intervals.length !== 1 || intervals[0].toMs <= toMs) out.push(`${worker}: membership ${intervals.map((i) => `lease ${i.leaseId} ${ms(i.fromMs)}..${ms(i.toMs)}`).join(', ') || 'none'}`);
    const notServing = ctx.observer.workers.filter((s) => s.worker === worker && s.atMs >= fromMs && s.atMs <= toMs && s.reply !== undefined && !s.reply.serving);
    if (notServing.length > 0) out.push(`${worker}: not serving in ${notServing.length} sample(s), first at ${(notServing[0].atMs / 1000).toFixed(3)} s`);
  }
  return out;
}

export const S0 = defineScenario({
  id: 'S0',
  title: 'Fault-free soak, both cores busy',
  passWhen: 'no lease lost, no reshard',
  async run(ctx) {
    const fromMs = ctx.timeline.nowMs();
    const cpuBefore = cpuTimes();
    const load = ctx.workload();
    const lanes = load.runLanes(ctx.requests);
    await sleep(ctx.env.short ? SOAK_SHORT_MS : SOAK_MS);
    const cpuAfter = cpuTimes();
    load.stop();
    const records = await lanes;
    const toMs = ctx.timeline.nowMs();
    const busyPercent = (100 * (cpuAfter.busy - cpuBefore.busy)) / Math.max(1, cpuAfter.total - cpuBefore.total);
    const n = reshards(ctx.observer.etcd, fromMs, toMs);
    return {
      records,
      criteria: [
        criterion('no reshard', n === 0, `plan epoch delta ${n}`),
        noViolations('no lease lost', leaseLossViolations(ctx, fromMs, toMs), `every worker kept one lease and served in every sample`),
        criterion(`load condition: both cores busy (>= ${BUSY_CPU_PERCENT} % CPU over the soak)`, busyPercent >= BUSY_CPU_PERCENT, `${busyPercent.toFixed(0)} % of both cores busy`),
      ],
      extra: { cpuBusyPercent: Math.round(busyPercent), soakMs: Math.round(toMs - fromMs) },
    };
  },
});

export const S8 = defineScenario({
  id: 'S8',
  title: 'Kill etcd, restart it after 5 s',
  passWhen: 'serving continues; no reshard caused by the outage',
  async run(ctx) {
    const load = ctx.workload();
    const { done: lanes } = await lanesUnderWay(ctx, load);
    const faultAtMs = ctx.faults.kill('etcd');
    await ctx.cluster.exited('etcd');
    await sleep(ETCD_OUTAGE_MS);
    const restartedAtMs = await ctx.faults.restart('etcd');
    // Leases and watches must resume: watch the cluster for two TTLs after etcd is back.
    await sleep(2 * ctx.env.leaseTtlMs + 2000);
    const allServing = await waitUntil(ctx, 10_000, () => ctx.cluster.workerNames().every((w) => ctx.observer.workers.filter((s) => s.worker === w).at(-1)?.reply?.serving === true));
    load.stop();
    const records = await lanes;
    const arrivals = load.arrivalTimesMs();
    const duringOutage = arrivals.filter((t) => t > faultAtMs && t < restartedAtMs).length;
    const stall = longestStallMs(arrivals, faultAtMs, restartedAtMs);
    const epochs = ctx.observer.statuses.filter((s) => s.atMs >= faultAtMs && s.status !== undefined).map((s) => s.status!.planEpoch);
    const n = reshards(ctx.observer.etcd, faultAtMs, ctx.timeline.nowMs());
    const members = ctx.cluster.workerNames().map((w) => `${w}: ${memberIntervals(ctx.observer.etcd, w).filter((i) => i.toMs > faultAtMs).map((i) => `lease ${i.leaseId}`).join(' -> ') || 'no membership'}`);
    return {
      records,
      faultAtMs,
      recoveryWindowEndMs: restartedAtMs,
      criteria: [
        criterion(
          'serving continued while etcd was down',
          duringOutage > 0 && stall <= OUTAGE_STALL_BOUND_MS,
          `${duringOutage} tokens during the ${Math.round(restartedAtMs - faultAtMs)} ms outage; longest gap ${Math.round(stall)} ms (bound ${OUTAGE_STALL_BOUND_MS} ms)`,
        ),
        criterion('no reshard caused by the outage', n === 0 && epochs.every((e) => e === ctx.epochBefore), `plan epoch delta ${n}; Status epochs after the kill: ${[...new Set(epochs)].join(', ')}`),
        criterion('leases and watches resume: every worker serving after the restart', allServing !== undefined, members.join('; ')),
      ],
      extra: { etcdDownMs: Math.round(restartedAtMs - faultAtMs), tokensDuringOutage: duringOutage, longestStallDuringOutageMs: Math.round(stall) },
    };
  },
});

type FaultKind = 'kill-worker' | 'pause-worker' | 'partition-worker' | 'delay-worker' | 'kill-coordinator';

interface Pending {
  readonly dueMs: number;
  readonly what: string;
  readonly undo: () => Promise<void> | void;
}

const TICK_MS = 10_000;
const UNDO_AFTER_MS = 5000;
const S10_SHORT_MS = 40_000;
/** S10's delay fault: FAULTS.md's `netem delay 100ms 50ms`, or the same in the worker's fault proxy. */
const S10_DELAY = { delayMs: 100, jitterMs: 50 };

/**
 * The kinds S10 draws from on this machine: a partition needs netem or tc drop filters; a delay is
 * netem where there is netem, else the fault proxy in front of the worker (S10 runs proxied).
 */
export function s10Kinds(caps: Capabilities): FaultKind[] {
  const kinds: FaultKind[] = ['kill-worker', 'pause-worker', 'kill-coordinator', 'delay-worker'];
  if (caps.netem.ok || caps.tcDrop.ok) kinds.push('partition-worker');
  return kinds;
}

/**
 * Recovery bound per kind (fault -> the token ending the longest stall before the next fault):
 * a lost worker is noticed within a lease TTL (or sooner, by the data path) and its streams
 * replayed; a lost coordinator needs the standby to win the election (one TTL) and the clients to
 * retry. A delay must cause no stall beyond the delay itself.
 */
export function recoveryBoundMs(kind: FaultKind, leaseTtlMs: number): number {
  switch (kind) {
    case 'kill-worker':
    case 'pause-worker':
    case 'partition-worker':
      return leaseTtlMs + 3000;
    case 'kill-coordinator':
      return 2 * leaseTtlMs + 3000;
    case 'delay-worker':
      return 1000;
  }
}

/**
 * What S10 bounds per fault (recoveryBoundMs). A kill, pause, partition: its recovery, fault ->
 * the token ending the longest stall before the next fault. A delay lasts until the next fault
 * and is not recovered from while it holds: every step crosses the delayed link twice (up to
 * 2 x 150 ms more per step), so gaps just over the 500 ms stall threshold are the delay itself and
 * "the token ending the longest of them" falls anywhere in the 10 s (a 513 ms gap 8 s in read as
 * an 8.5 s recovery). For a delay the measure is the longest gap between tokens (all streams)
 * while it holds: no stall beyond the delay itself.
 */
export function faultMeasureMs(kind: FaultKind, arrivalsMs: readonly number[], atMs: number, untilMs: number): number | undefined {
  return kind === 'delay-worker' ? longestStallMs(arrivalsMs, atMs, untilMs) : recoveryMs(arrivalsMs, atMs, untilMs);
}

/**
 * The order faults are drawn in: rounds, each every kind once in a seeded random order, so that
 * a run of kinds.length ticks applies every kind (a tick that cannot apply its kind safely keeps
 * it for the next tick).
 */
export function faultOrder(kinds: readonly FaultKind[], random: () => number, rounds: number): FaultKind[] {
  const out: FaultKind[] = [];
  for (let r = 0; r < rounds; r++) {
    const round = [...kinds];
    for (let i = round.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [round[i], round[j]] = [round[j], round[i]];
    }
    out.push(...round);
  }
  return out;
}

export const S10 = defineScenario({
  id: 'S10',
  title: 'Random kill / pause / partition / delay every 10 s',
  passWhen: 'every completed output identical; epochs strictly increase; no leaked leases or streams; every fault kind applied, each recovered within its bound',
  topology: { workers: 3, coordinators: 2, proxied: true },
  client: { retryMidStream: true, deadlineMs: 120_000 },
  allMustComplete: false,
  async run(ctx) {
    const { cluster, faults, env, timeline } = ctx;
    const random = seededRandom(env.seed);
    const kinds = s10Kinds(env.caps);
    // Short: long enough for every kind once, with one spare tick for a kind that had to wait.
    const durationMs = env.short ? Math.max(S10_SHORT_MS, (kinds.length + 1) * TICK_MS) : env.soakMs;
    const order = faultOrder(kinds, random, Math.ceil(durationMs / TICK_MS / kinds.length) + 1);
    const pending: Pending[] = [];
    const schedule: string[] = [];
    /** Faults applied (a tick whose fault could not be applied safely is only logged). */
    const applied: { atMs: number; kind: FaultKind; target: string }[] = [];
    let ticks = 0;
    const load = ctx.workload();
    const lanes = load.runLanes(ctx.requests);
    const startMs = timeline.nowMs();

    const settle = async (all: boolean): Promise<void> => {
      pending.sort((a, b) => a.dueMs - b.dueMs);
      while (pending.length > 0 && (all || pending[0].dueMs <= timeline.nowMs())) await pending.shift()!.undo();
    };
    const restartAfterExit = async (name: string): Promise<void> => {
      await cluster.exited(name);
      await faults.restart(name);
    };
    const healthyWorkers = (): string[] => cluster.workerNames().filter((w) => cluster.isRunning(w) && !faults.faultedNodes().has(w));

    while (timeline.nowMs() - startMs < durationMs && order.length > 0) {
      ticks += 1;
      await sleep(Math.max(0, startMs + ticks * TICK_MS - timeline.nowMs()));
      await settle(false);
      if (timeline.nowMs() - startMs >= durationMs) break;
      const kind = order[0];
      const workers = healthyWorkers();
      const atMs = timeline.nowMs();
      if (kind === 'kill-coordinator') {
        const leader = await cluster.leaderStatus();
        if (leader === undefined || cluster.coordinatorNames().filter((c) => cluster.isRunning(c)).length < 2) {
          schedule.push(`${Math.round(atMs - startMs)} ms: postponed ${kind} (no leader or no standby)`);
          continue;
        }
        faults.kill(leader.name);
        pending.push({ dueMs: atMs + UNDO_AFTER_MS, what: `restart ${leader.name}`, undo: () => restartAfterExit(leader.name) });
        schedule.push(`${Math.round(atMs - startMs)} ms: SIGKILL coordinator ${leader.name}`);
        applied.push({ atMs, kind, target: leader.name });
      } else {
        if (workers.length < 3) {
          schedule.push(`${Math.round(atMs - startMs)} ms: postponed ${kind} (only ${workers.length} healthy worker(s))`);
          continue;
        }
        const target = workers[Math.floor(random() * workers.length)];
        if (kind === 'kill-worker') {
          faults.kill(target);
          pending.push({ dueMs: atMs + UNDO_AFTER_MS, what: `restart ${target}`, undo: () => restartAfterExit(target) });
        } else if (kind === 'pause-worker') {
          faults.pause(target);
          pending.push({ dueMs: atMs + 2 * env.leaseTtlMs, what: `resume ${target}`, undo: () => void faults.resume(target) });
        } else if (kind === 'partition-worker') {
          const hole = faults.blackhole(target);
          pending.push({ dueMs: atMs + UNDO_AFTER_MS, what: `heal ${target}`, undo: () => void faults.heal(hole) });
        } else {
          const delay = env.caps.netem.ok ? faults.netem(target, ['delay', `${S10_DELAY.delayMs}ms`, `${S10_DELAY.jitterMs}ms`]) : faults.proxyDelay(target, S10_DELAY);
          pending.push({ dueMs: atMs + UNDO_AFTER_MS, what: `heal ${target}`, undo: () => void faults.heal(delay) });
        }
        schedule.push(`${Math.round(atMs - startMs)} ms: ${kind} ${target}`);
        applied.push({ atMs, kind, target });
      }
      order.shift();
    }
    await settle(true);
    faults.healAll();
    for (const name of [...cluster.coordinatorNames(), ...cluster.workerNames()]) if (!cluster.isRunning(name)) await faults.restart(name);
    let servesAgain = true;
    try {
      await cluster.waitServing(cluster.workerNames().length, 60_000);
    } catch {
      servesAgain = false;
    }
    await sleep(2000);
    load.stop();
    const records = await lanes;

    // Quiet: anything a dead process held expires within a TTL; then leases and streams are audited.
    await sleep(2 * env.leaseTtlMs + 1000);
    const audit = await auditLeases(cluster);
    const leader = await cluster.leaderStatus();
    const openSequences = leader === undefined ? ['no coordinator serves'] : [
      ...(leader.status.activeSequences > 0 ? [`${leader.name}: ${leader.status.activeSequences} active sequence(s)`] : []),
      ...leader.status.workers.filter((w) => w.sequences > 0).map((w) => `${w.id}: ${w.sequences} sequence(s) cached`),
    ];
    const arrivals = load.arrivalTimesMs();
    const disruptive = applied.filter((f) => f.kind !== 'delay-worker');
    const detections = disruptive.map((f) => detectionMs(ctx.observer.statuses, f.atMs, epochBeforeAt(ctx, f.atMs))).filter((d): d is number => d !== undefined && d < TICK_MS);
    const recoveries = applied.map((f, i) => ({ ...f, recoveryMs: faultMeasureMs(f.kind, arrivals, f.atMs, applied[i + 1]?.atMs ?? f.atMs + TICK_MS), boundMs: recoveryBoundMs(f.kind, env.leaseTtlMs) }));
    const notApplied = kinds.filter((k) => !applied.some((f) => f.kind === k));
    const measure = (kind: FaultKind): string => (kind === 'delay-worker' ? 'longest gap' : 'recovery');
    const slow = recoveries.filter((r) => r.recoveryMs === undefined || r.recoveryMs > r.boundMs).map((r) => `${r.kind} ${r.target} at ${Math.round(r.atMs - startMs)} ms: ${measure(r.kind)} ${ms(r.recoveryMs)} > ${r.boundMs} ms`);
    const byKind = kinds.map((k) => `${k} x${applied.filter((f) => f.kind === k).length}`).join(', ');
    const criteria: Criterion[] = [
      noViolations('epochs strictly increase', epochOrderViolations(ctx.observer.etcd), `${ctx.observer.plans().size} plans, epochs increasing`),
      noViolations('no leaked leases', audit.leaks, `${audit.leases} live lease(s), each held by a running process`),
      noViolations('no leaked streams', openSequences, 'no active sequence on the coordinator, no cached sequence on any worker'),
      criterion('the cluster serves every worker again after the last fault', servesAgain, servesAgain ? 'ready plan over all workers' : 'no ready plan over all workers within 60 s'),
      noViolations('every fault kind was applied at least once', notApplied.map((k) => `${k}: never applied`), byKind),
      noViolations(
        'every fault recovered within its bound (worker faults TTL + 3 s, coordinator 2 x TTL + 3 s; a delay: no gap between tokens over 1 s while it holds)',
        slow,
        recoveries.map((r) => `${r.kind} ${measure(r.kind)} ${ms(r.recoveryMs)}`).join(', '),
      ),
    ];
    return {
      records,
      criteria,
      faultAtMs: applied[0]?.atMs,
      recoveryWindowEndMs: applied[1]?.atMs,
      extra: {
        faults: schedule.join('; '),
        faultCount: applied.length,
        faultKinds: byKind,
        maxDetectionMs: detections.length === 0 ? null : Math.round(Math.max(...detections)),
        maxRecoveryMs: recoveries.length === 0 ? null : Math.round(Math.max(...recoveries.map((r) => r.recoveryMs ?? Infinity))),
        liveLeases: audit.leases,
        // The proxies run on the harness's event loop: how late they wrote what was due (a starved harness adds delay to every link).
        proxyMaxLateMs: Math.round(Math.max(0, ...cluster.proxiedNodes().map((n) => cluster.proxy(n).stats().maxLateMs))),
      },
    };
  },
});

function epochBeforeAt(ctx: ScenarioContext, atMs: number): number {
  const before = ctx.observer.statuses.filter((s) => s.atMs <= atMs && s.status !== undefined && s.status.serving).map((s) => s.status!.planEpoch);
  return before.length === 0 ? ctx.epochBefore : Math.max(...before);
}
