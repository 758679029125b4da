/**
 * Finds stages that stopped answering. A stage killed or paused mid-pipeline breaks no stream the
 * coordinator holds: its micro-batch simply never comes back. The watchdog notices a micro-batch
 * out far longer than a step takes, probes the plan's workers (liveness-probe.ts: several probes
 * over a window of at least 800 ms, on connections kept open, so that packet loss does not make a
 * live worker look dead), and breaks the pipeline when one does not answer, so that the next plan
 * leaves it out at once instead of after its lease expires (with a standby holding its range, that
 * plan needs no weight load). A merely slow pipeline answers the probe and is left alone; a
 * suspect that is in fact alive is reconsidered after two lease TTLs.
 */
import type { MemberInfo } from '../common/cluster/member';
import { workersOf, type Plan } from '../common/cluster/plan';
import { UnavailableError } from '../common/errors';
import { INSECURE, type NodeSecurity } from '../common/security/node-security';
import type { WorkerId } from '../common/ids';
import { LivenessProbe, MIN_VERDICT_WINDOW_MS, REAL_PROBE_CLOCK, type AskStatus, type ProbeClock } from './liveness-probe';
import { ProbeChannels } from './probe-channels';
import type { RemotePipeline } from './remote-pipeline';
import type { Logger } from '../common/logging/logger';

/** ... while a hand-over plan loads: workers are then loading stages beside serving, and a slow
 * answer from a starved process must not end the hand-over in a failure and a replay. */
const LOADING_VERDICT_WINDOW_MS = 1500;
/**
 * A micro-batch out longer than this many typical steps (and at least STALL_MIN_MS) is a stall.
 * Probing is cheap (a Status call on an open connection) and a wrong suspicion is not (a
 * reshard), so the threshold is low and the verdict careful: stall + verdict window stays within
 * FAULTS.md S3's 2 s for a blackholed stage.
 */
const STALL_STEPS = 3;
const STALL_MIN_MS = 500;
const WATCHDOG_INTERVAL_MS = 100;

export interface StallWatchdogOptions {
  /** The pipeline serving now, if any. */
  readonly pipeline: () => RemotePipeline | undefined;
  /** The latest published plan, whose workers are probed. */
  readonly plan: () => Plan | undefined;
  /** Whether that plan is a hand-over still loading (probes then allow more time). */
  readonly loadingHandover: () => boolean;
  readonly members: () => ReadonlyMap<WorkerId, MemberInfo>;
  readonly leaseTtlMs: number;
  /** A suspect's time is up and it is still a member: plan with it again. */
  readonly onSuspectCleared: () => void;
  /** How workers are dialed for status probes; plaintext when absent. */
  readonly security?: NodeSecurity;
  readonly log: Logger;
  /** The probes' time and timers; real when absent. */
  readonly clock?: ProbeClock;
  /** How one probe asks a worker (address) for its status; ProbeChannels when absent. */
  readonly ask?: AskStatus;
}

export class StallWatchdog {
  /** Workers that did not answer a probe after a failure, left out of plans for a while. */
  private readonly suspects = new Set<WorkerId>();
  private timer: NodeJS.Timeout | undefined;
  /** The probe in progress, if any: ticks do not start another. */
  private probing: Promise<void> | undefined;
  /** When the latest probe round ended. */
  private lastProbeEndMs = -Infinity;
  private readonly channels: ProbeChannels;
  private readonly liveness: LivenessProbe;

  constructor(private readonly options: StallWatchdogOptions) {
    this.channels = new ProbeChannels(options.security ?? INSECURE);
    this.liveness = new LivenessProbe(options.ask ?? ((address, timeoutMs) => this.channels.answers(address, timeoutMs)), options.clock ?? REAL_PROBE_CLOCK);
  }

  start(): void {
    this.timer = setInterval(() => void this.tick(), WATCHDOG_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.channels.close();
  }

  isSuspect(worker: WorkerId): boolean {
    return this.suspects.has(worker);
  }

  /** A member left: it is no longer anyone's suspect. */
  forget(worker: WorkerId): void {
    this.suspects.delete(worker);
  }

  /**
   * Whether a probe round ended so recently that another would learn nothing new. Not while one
   * runs: a caller that must act on the verdict (a broken data path: reopen it or plan without a
   * suspect) waits for that round through probe(), or it would reopen onto a worker about to be
   * found dead.
   */
  probedRecently(): boolean {
    return this.probing === undefined && this.nowMs() - this.lastProbeEndMs < MIN_VERDICT_WINDOW_MS * 2;
  }

  private nowMs(): number {
    return (this.options.clock ?? REAL_PROBE_CLOCK).nowMs();
  }

  private async tick(): Promise<void> {
    const pipeline = this.options.pipeline();
    if (pipeline === undefined || pipeline.isBroken || this.probing !== undefined) return;
    const thresholdMs = Math.max(STALL_MIN_MS, STALL_STEPS * (pipeline.typicalStepMs() ?? STALL_MIN_MS));
    if (pipeline.stalledMs() < thresholdMs) return;
    const before = this.suspects.size;
    await this.probe();
    if (this.suspects.size > before && this.options.pipeline() === pipeline) {
      pipeline.fail(new UnavailableError(`a stage stopped answering (micro-batch out for ${pipeline.stalledMs().toFixed(0)} ms)`));
    }
  }

  /** Asks every worker of the plan for its status; those that do not answer become suspects. Joins a round in progress. */
  probe(): Promise<void> {
    this.probing ??= this.probeAll().finally(() => {
      this.lastProbeEndMs = this.nowMs();
      this.probing = undefined;
    });
    return this.probing;
  }

  private async probeAll(): Promise<void> {
    const plan = this.options.plan();
    if (plan === undefined) return;
    const members = this.options.members();
    this.channels.retain(new Set([...members.values()].map((m) => m.address)));
    const minWindowMs = this.options.loadingHandover() ? LOADING_VERDICT_WINDOW_MS : MIN_VERDICT_WINDOW_MS;
    await Promise.all(
      workersOf(plan).map(async (id) => {
        const member = members.get(id);
        if (member === undefined || (await this.liveness.alive(member.address, minWindowMs))) return;
        if (this.suspects.has(id)) return;
        this.options.log.warn(`worker ${id} does not answer: leaving it out of the next plan`);
        this.suspects.add(id);
        setTimeout(() => {
          this.suspects.delete(id);
          if (this.options.members().has(id)) this.options.onSuspectCleared();
        }, 2 * this.options.leaseTtlMs).unref();
      }),
    );
  }
}
