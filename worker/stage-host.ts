/**
 * What a worker serves right now: its plan epoch, its stage (engine + runner + where output
 * goes) and its experts. Installing a new assignment swaps all of it at once, so frames are
 * accepted for exactly one epoch at a time.
 */
import type { WorkerId } from '../common/ids';
import type { NodeSecurity } from '../common/security/node-security';
import type { ExpertBackend } from '../common/engine/experts';
import { ForwardClient } from '../common/wire/forward-client';
import type { StageFrame } from '../common/wire/frames';
import { IdleSequences } from './idle-sequences';
import { ResultsHub } from './results-hub';
import type { StageBackend } from './stage-backend';
import { StageRunner, type StageAssignment, type StageRunnerHooks } from './stage-runner';
import type { RejectReason, WorkerState } from './worker-service';

export interface StreamSettings {
  readonly drainTimeoutMs: number;
  readonly keepaliveTimeMs: number;
  readonly keepaliveTimeoutMs: number;
  /** The worker's transport security, for the stream to the next stage; plaintext when absent. */
  readonly security?: NodeSecurity;
  /** A sequence no frame touched for this long has its caches freed (idle-sequences.ts); never when absent. */
  readonly sequenceIdleMs?: number;
}

export interface StageInstall {
  readonly assignment: StageAssignment;
  readonly stage: StageBackend;
  /** Address of the next stage's worker; undefined for the last stage. */
  readonly nextAddress: string | undefined;
}

/** One served stage: its runner and, unless it is the last stage, its stream to the next. */
interface HostedStage {
  readonly runner: StageRunner;
  readonly link: { downstream: ForwardClient | undefined };
}

export class StageHost implements WorkerState {
  readonly results: ResultsHub;
  private epoch: number | undefined;
  /** By stage index. Usually one; more when a standby took over a neighbouring range. */
  private hosted = new Map<number, HostedStage>();
  private localExperts: ExpertBackend | undefined;
  private serving: () => boolean = () => true;

  constructor(
    readonly workerId: WorkerId,
    private readonly streams: StreamSettings,
    private readonly hooks: StageRunnerHooks & { onRejected?(reason: RejectReason): void; onDownstreamBroken?(err: Error): void; onStreamCutOff?(stream: string, err: Error): void } = {},
  ) {
    this.results = new ResultsHub(
      () => this.runner()?.stage.config.vocabSize ?? 0,
      undefined,
      (err) => this.onStreamCutOff('Results', err),
    );
  }

  /** The lease check that decides whether frames are accepted (self-fencing). */
  setServingCheck(check: () => boolean): void {
    this.serving = check;
  }

  servingEpoch(): number | undefined {
    return this.epoch;
  }

  isServing(): boolean {
    return this.serving();
  }

  /** The first stage served here (in stage order), if any. */
  runner(): StageRunner | undefined {
    return this.runners()[0];
  }

  runnerFor(stageIndex: number): StageRunner | undefined {
    return this.hosted.get(stageIndex)?.runner;
  }

  /** Every stage served here, in stage order. */
  runners(): StageRunner[] {
    return [...this.hosted.entries()].sort((a, b) => a[0] - b[0]).map(([, h]) => h.runner);
  }

  experts(): ExpertBackend | undefined {
    return this.localExperts;
  }

  onRejected(reason: RejectReason): void {
    this.hooks.onRejected?.(reason);
  }

  onStreamCutOff(stream: string, err: Error): void {
    this.hooks.onStreamCutOff?.(stream, err);
  }

  /** Serves `epoch` from now on, with the given stage (or none) and experts (or none). */
  install(epoch: number, stage: StageInstall | undefined, experts: ExpertBackend | undefined): void {
    this.installStages(epoch, stage === undefined ? [] : [stage], experts);
  }

  /** Serves `epoch` from now on, with the given stages and experts; the old ones stop at once. */
  installStages(epoch: number, stages: readonly StageInstall[], experts: ExpertBackend | undefined): void {
    this.stopStages();
    for (const stage of stages) this.hosted.set(stage.assignment.stageIndex, this.host(stage));
    this.localExperts = experts;
    this.epoch = epoch;
  }

  private host(stage: StageInstall): HostedStage {
    const nextAddress = stage.nextAddress;
    const link: HostedStage['link'] = { downstream: undefined };
    if (nextAddress === undefined) {
      return { runner: new StageRunner(stage.assignment, stage.stage, { kind: 'results', publish: (r) => this.results.publish(r) }, this.hooks, this.idleTracker()), link };
    }
    // A broken stream to the next stage is reopened for the next frame; the frames lost with it
    // are the coordinator's to time out and replay.
    const hiddenSize = stage.stage.config.hiddenSize;
    const connect = (): ForwardClient => new ForwardClient(nextAddress, { hiddenSize, ...this.streams, onBroken: (err) => this.hooks.onDownstreamBroken?.(err) });
    link.downstream = connect();
    const send = (frame: StageFrame): Promise<void> => {
      if (link.downstream === undefined || link.downstream.isBroken) {
        link.downstream?.close();
        link.downstream = connect();
      }
      return link.downstream.send(frame);
    };
    return { runner: new StageRunner(stage.assignment, stage.stage, { kind: 'next', send }, this.hooks, this.idleTracker()), link };
  }

  private idleTracker(): IdleSequences | undefined {
    return this.streams.sequenceIdleMs === undefined ? undefined : new IdleSequences(this.streams.sequenceIdleMs);
  }

  private stopStages(): void {
    for (const h of this.hosted.values()) {
      h.runner.close();
      h.link.downstream?.close();
    }
    this.hosted = new Map();
    this.results.closeAll();
  }

  /** Stops serving any epoch (fenced, or shutting down). */
  uninstall(): void {
    this.stopStages();
    this.epoch = undefined;
  }
}
