/** S0 (fault-free soak), S8 (etcd crash and restart), S10 (random faults for minutes). */
import { readFileSync } from 'node:fs';
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

export const S10 = defineScenario({
  id: 'S10',
  title: 'Random kill / pause / partition / delay every 10 s',
  passWhen: 'every completed output identical; epochs strictly increase; no leaked leases or streams',
  topology: { workers: 3, coordinators: 2 },
  client: { retryMidStream: true, deadlineMs: 120_000 },
  allMustComplete: false,
  async run(ctx) {
    const { cluster, faults, env, timeline } = ctx;
    const random = seededRandom(env.seed);
    const durationMs = env.short ? S10_SHORT_MS : env.soakMs;
    const kinds: FaultKind[] = ['kill-worker', 'pause-worker', 'kill-coordinator'];
    if (env.caps.netem.ok || env.caps.tcDrop.ok) kinds.push('partition-worker');
    if (env.caps.netem.ok) kinds.push('delay-worker');
    const pending: Pending[] = [];
    const schedule: string[] = [];
    /** Faults applied (a tick whose fault could not be applied safely is only logged). */
    const applied: { atMs: number; kind: FaultKind }[] = [];
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

    while (timeline.nowMs() - startMs < durationMs) {
      ticks += 1;
      await sleep(Math.max(0, startMs + ticks * TICK_MS - timeline.nowMs()));
      await settle(false);
      if (timeline.nowMs() - startMs >= durationMs) break;
      const kind = kinds[Math.floor(random() * kinds.length)];
      const workers = healthyWorkers();
      const atMs = timeline.nowMs();
      if (kind === 'kill-coordinator') {
        const leader = await cluster.leaderStatus();
        if (leader === undefined || cluster.coordinatorNames().filter((c) => cluster.isRunning(c)).length < 2) {
          schedule.push(`${Math.round(atMs - startMs)} ms: skipped ${kind} (no leader or no standby)`);
          continue;
        }
        faults.kill(leader.name);
        pending.push({ dueMs: atMs + UNDO_AFTER_MS, what: `restart ${leader.name}`, undo: () => restartAfterExit(leader.name) });
        schedule.push(`${Math.round(atMs - startMs)} ms: SIGKILL coordinator ${leader.name}`);
      } else {
        if (workers.length < 3) {
          schedule.push(`${Math.round(atMs - startMs)} ms: skipped ${kind} (only ${workers.length} healthy worker(s))`);
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
          const delay = faults.netem(target, ['delay', '100ms', '50ms']);
          pending.push({ dueMs: atMs + UNDO_AFTER_MS, what: `heal ${target}`, undo: () => void faults.heal(delay) });
        }
        schedule.push(`${Math.round(atMs - startMs)} ms: ${kind} ${target}`);
      }
      applied.push({ atMs, kind });
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
    const recoveries = disruptive.map((f) => recoveryMs(arrivals, f.atMs, f.atMs + TICK_MS)).filter((r): r is number => r !== undefined);
    const criteria: Criterion[] = [
      noViolations('epochs strictly increase', epochOrderViolations(ctx.observer.etcd), `${ctx.observer.plans().size} plans, epochs increasing`),
      noViolations('no leaked leases', audit.leaks, `${audit.leases} live lease(s), each held by a running process`),
      noViolations('no leaked streams', openSequences, 'no active sequence on the coordinator, no cached sequence on any worker'),
      criterion('the cluster serves every worker again after the last fault', servesAgain, servesAgain ? 'ready plan over all workers' : 'no ready plan over all workers within 60 s'),
    ];
    return {
      records,
      criteria,
      faultAtMs: applied[0]?.atMs,
      recoveryWindowEndMs: applied[1]?.atMs,
      extra: {
        faults: schedule.join('; '),
        faultCount: applied.length,
        maxDetectionMs: detections.length === 0 ? null : Math.round(Math.max(...detections)),
        maxRecoveryMs: recoveries.length === 0 ? null : Math.round(Math.max(...recoveries)),
        liveLeases: audit.leases,
      },
    };
  },
});

function epochBeforeAt(ctx: ScenarioContext, atMs: number): number {
  const before = ctx.observer.statuses.filter((s) => s.atMs <= atMs && s.status !== undefined && s.status.serving).map((s) => s.status!.planEpoch);
  return before.length === 0 ? ctx.epochBefore : Math.max(...before);
}
