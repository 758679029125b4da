/**
 * A planned hand-over, on the coordinator (see Plan.handover). Drains, joins and rebalances are
 * planned: the old pipeline is healthy, so instead of replaying every sequence on the new plan
 * (a pause as long as a prefill of everything generated so far), the caches move:
 *
 *   1. the plan is published with `handover`; workers load it while the old one keeps serving;
 *   2. once every worker is ready, the scheduler holds new micro-batches back until none is in
 *      flight (at most one step), which fixes every sequence's position;
 *   3. CommitPlan goes to every worker of both plans: new stages copy the caches of their layers
 *      from the old primaries, and every worker switches to the new epoch;
 *   4. generation goes on at the same positions on the new pipeline.
 *
 * If anything fails (a worker does not migrate, the old pipeline breaks meanwhile), the sequences
 * are replayed as after a failure: the hand-over is an optimisation, never a risk to the output.
 */
import type { Handover, Plan } from '../common/cluster/plan';
import { workersOf } from '../common/cluster/plan';
import { asBoraError } from '../common/errors';
import type { SequenceId, WorkerId } from '../common/ids';
import { fromServiceError } from '../common/wire/grpc-status';
import type { CommitReply, CommitRequest } from '../common/wire/messages';
import type { NodeSecurity } from '../common/security/node-security';
import { withWorkerClient } from '../common/wire/proto';

/** A commit includes copying caches between workers: allow for large ones. */
const COMMIT_DEADLINE_MS = 60_000;

export function commitPlan(address: string, request: CommitRequest, security: NodeSecurity, deadlineMs = COMMIT_DEADLINE_MS): Promise<CommitReply> {
  return withWorkerClient<CommitReply>(
    address,
    security,
    (client) =>
      new Promise((resolve, reject) => {
        client.commitPlan(request, { deadline: Date.now() + deadlineMs }, (err, reply) => (err === null ? resolve(reply!) : reject(fromServiceError(err))));
      }),
  );
}

/** The hand-over part of a plan that follows `previous`. */
export function handoverFrom(previous: Plan): Handover {
  return { fromEpoch: previous.epoch, stages: previous.stages.map((s) => ({ range: s.range, worker: s.workers[0] })) };
}

export interface CommitOutcome {
  /** Every stage of the new plan holds every sequence's caches at its position. */
  readonly migrated: boolean;
  readonly detail: string;
}

/**
 * Step 3: commits `plan` on every worker of it and of `previous` that has an address, with the
 * positions the quiesced scheduler reported (undefined: it could not quiesce; the workers then
 * switch with empty caches).
 */
export async function commitHandover(
  previous: Plan,
  plan: Plan,
  positions: ReadonlyMap<SequenceId, number> | undefined,
  addressOf: (worker: WorkerId) => string | undefined,
  security: NodeSecurity,
): Promise<CommitOutcome> {
  const sequences = [...(positions ?? [])].map(([sequenceId, nextPosition]) => ({ sequenceId, nextPosition }));
  const workers = [...new Set([...workersOf(previous), ...workersOf(plan)])];
  const replies = await Promise.all(
    workers.map(async (worker) => {
      const address = addressOf(worker);
      if (address === undefined) return { worker, migrated: false, detail: 'gone' };
      try {
        const reply = await commitPlan(address, { planEpoch: plan.epoch, sequences }, security);
        return { worker, ...reply };
      } catch (err) {
        return { worker, migrated: false, detail: asBoraError(err).message };
      }
    }),
  );
  const serving = new Set(plan.stages.map((s) => s.workers[0]));
  const failed = replies.filter((r) => serving.has(r.worker) && !r.migrated);
  const migrated = positions !== undefined && failed.length === 0;
  const detail = positions === undefined ? 'the pipeline failed before it was idle' : failed.length === 0 ? `${sequences.length} sequence(s) moved without replay` : failed.map((r) => `${r.worker}: ${r.detail}`).join('; ');
  return { migrated, detail };
}
