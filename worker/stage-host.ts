/**
 * What a worker serves right now: its plan epoch, its stage (engine + runner + where output
 * goes) and its experts. Installing a new assignment swaps all of it at once, so frames are
 * accepted for exactly one epoch at a time.
 */
import type { ExpertBackend } from '../common/engine/experts';
import { ForwardClient } from '../common/wire/forward-client';
import type { StageFrame } from '../common/wire/frames';
import { ResultsHub } from './results-hub';
import type { StageBackend } from './stage-backend';
import { StageRunner, type StageAssignment, type StageRunnerHooks } from './stage-runner';
import type { RejectReason, WorkerState } from './worker-service';

export interface StreamSettings {
  readonly drainTimeoutMs: number;
  readonly keepaliveTimeMs: number;
  readonly keepaliveTimeoutMs: number;
}

export interface StageInstall {
  readonly assignment: StageAssignment;
  readonly stage: StageBackend;
  /** Address of the next stage's worker; undefined for the last stage. */
  readonly nextAddress: string | undefined;
}

export class StageHost implements WorkerState {
  readonly results: ResultsHub;
  private epoch: number | undefined;
  private current: StageRunner | undefined;
  private downstream: ForwardClient | undefined;
  private localExperts: ExpertBackend | undefined;
  private serving: () => boolean = () => true;

  constructor(
    readonly workerId: string,
    private readonly streams: StreamSettings,
    private readonly hooks: StageRunnerHooks & { onRejected?(reason: RejectReason): void; onDownstreamBroken?(err: Error): void } = {},
  ) {
    this.results = new ResultsHub(() => this.current?.stage.config.vocabSize ?? 0);
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

  runner(): StageRunner | undefined {
    return this.current;
  }

  experts(): ExpertBackend | undefined {
    return this.localExperts;
  }

  onRejected(reason: RejectReason): void {
    this.hooks.onRejected?.(reason);
  }

  /** Serves `epoch` from now on, with the given stage (or none) and experts (or none). */
  install(epoch: number, stage: StageInstall | undefined, experts: ExpertBackend | undefined): void {
    this.current?.close();
    this.downstream?.close();
    this.results.closeAll();
    this.downstream = undefined;
    this.current = undefined;
    if (stage !== undefined) {
      const config = stage.stage.config;
      const nextAddress = stage.nextAddress;
      if (nextAddress !== undefined) {
        // A broken stream to the next stage is reopened for the next frame; the frames lost
        // with it are the coordinator's to time out and replay.
        const connect = (): ForwardClient =>
          new ForwardClient(nextAddress, { hiddenSize: config.hiddenSize, ...this.streams, onBroken: (err) => this.hooks.onDownstreamBroken?.(err) });
        this.downstream = connect();
        const send = (frame: StageFrame): Promise<void> => {
          if (this.downstream === undefined || this.downstream.isBroken) {
            this.downstream?.close();
            this.downstream = connect();
          }
          return this.downstream.send(frame);
        };
        this.current = new StageRunner(stage.assignment, stage.stage, { kind: 'next', send }, this.hooks);
      } else {
        this.current = new StageRunner(stage.assignment, stage.stage, { kind: 'results', publish: (r) => this.results.publish(r) }, this.hooks);
      }
    }
    this.localExperts = experts;
    this.epoch = epoch;
  }

  /** Stops serving any epoch (fenced, or shutting down). */
  uninstall(): void {
    this.current?.close();
    this.downstream?.close();
    this.results.closeAll();
    this.current = undefined;
    this.downstream = undefined;
    this.epoch = undefined;
  }
}
