/**
 * Where a loaded hand-over plan waits for the coordinator's CommitPlan (the worker side of step 3
 * in coordinator/handover.ts). At most one plan waits at a time: a newer plan calls the wait off.
 */
import { FailedPreconditionError } from '../common/errors';
import type { WorkerId } from '../common/ids';
import { toServiceError } from '../common/wire/grpc-status';
import type { CommitReply, SequencePosition } from '../common/wire/messages';
import type { WorkerHandlers } from '../common/wire/proto';

/** The coordinator's commit of a hand-over plan, and where its answer goes. */
export interface Commit {
  readonly sequences: readonly SequencePosition[];
  reply(result: CommitReply): void;
}

export class CommitGate {
  private pending: { readonly epoch: number; deliver(commit: Commit | undefined): void } | undefined;

  constructor(
    private readonly workerId: WorkerId,
    /** A commit that has not come within this long is given up (undefined). */
    private readonly timeoutMs: number,
  ) {}

  /** Waits for the CommitPlan of `epoch`; undefined on timeout or cancel(). */
  wait(epoch: number): Promise<Commit | undefined> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => deliver(undefined), this.timeoutMs);
      const deliver = (commit: Commit | undefined): void => {
        clearTimeout(timer);
        if (this.pending === pending) this.pending = undefined;
        resolve(commit);
      };
      const pending = { epoch, deliver };
      this.pending = pending;
    });
  }

  /** The plan waiting is off (a newer plan came, or it could not be marked ready). */
  cancel(): void {
    this.pending?.deliver(undefined);
  }

  /** The CommitPlan handler: hands the commit to the waiting plan of that epoch, if any. */
  commitPlan(...[call, callback]: Parameters<WorkerHandlers['CommitPlan']>): void {
    const pending = this.pending;
    if (pending === undefined || pending.epoch !== call.request.planEpoch) {
      callback(toServiceError(new FailedPreconditionError(`worker ${this.workerId} has no loaded hand-over plan ${call.request.planEpoch} to commit`)));
      return;
    }
    pending.deliver({ sequences: call.request.sequences, reply: (result) => callback(null, result) });
  }
}
