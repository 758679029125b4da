/**
 * The Worker gRPC service: frames in (Forward), results out (Results), cache release, status
 * and remote expert calls. Every call is first checked against the caller's certificate
 * (worker-access.ts; with TLS only): a refused call ends with UNAUTHENTICATED or
 * PERMISSION_DENIED before anything is read. Every frame is checked before it is queued: plan
 * epoch (fencing), stage index, a serving lease, chunk order and tensor byte counts. A refused
 * frame is answered with an error ack; the stream and every other request carry on.
 */
import * as grpc from '@grpc/grpc-js';
import { FailedPreconditionError, PermissionDeniedError, StaleEpochError, UnavailableError, asBoraError } from '../common/errors';
import type { ExpertBackend } from '../common/engine/experts';
import { sequenceId, type WorkerId } from '../common/ids';
import { BoundedWriter } from '../common/wire/bounded-writer';
import { Reassembler, decodeStageFrame } from '../common/wire/frames';
import type { ActivationFrame, ForwardAck, ExpertReply, ExpertRequest, ExpertTokenCount } from '../common/wire/messages';
import { STATUS_BY_CODE, failCall, toServiceError } from '../common/wire/grpc-status';
import { boraProto, type WorkerHandlers } from '../common/wire/proto';
import { decodeF32, encodeF32 } from '../common/wire/tensor-codec';
import type { Identity } from '../common/security/identity';
import type { AuthCall } from '../common/security/node-access';
import type { ResultsHub } from './results-hub';
import type { StageRunner } from './stage-runner';
import { OPEN_WORKER_ACCESS, type WorkerAccess, type WorkerMethod } from './worker-access';

/** Frames queued at a stage before it stops reading its streams (HTTP/2 flow control then pushes back). */
export const MAX_QUEUED_FRAMES = 8;

/**
 * Ack bytes a Forward sender may leave unread before its stream is cut off: an ack is a few dozen
 * bytes (an error ack a few hundred), so this is thousands of frames' acks; a sender that never
 * reads them would otherwise make the worker queue one per frame it sends, without limit.
 */
export const MAX_UNSENT_ACK_BYTES = 1024 * 1024;

/** An ack's size in bytes, near enough. */
const ackBytes = (ack: ForwardAck): number => 32 + Buffer.byteLength(ack.error, 'utf8');

/** Why a frame (or, for the two security reasons, a whole Forward stream) was refused. */
export type RejectReason = 'stale_epoch' | 'malformed' | 'not_serving' | 'unauthenticated' | 'permission_denied';

/** What the service needs from the worker it belongs to. */
export interface WorkerState {
  readonly workerId: WorkerId;
  /** The plan epoch whose frames are accepted; undefined before the first plan is applied. */
  servingEpoch(): number | undefined;
  /** False while the lease may have expired (self-fencing). */
  isServing(): boolean;
  /** The stage served here under this index, if any. */
  runnerFor(stageIndex: number): StageRunner | undefined;
  /** Every stage served here, in stage order. */
  runners(): StageRunner[];
  experts(): ExpertBackend | undefined;
  readonly results: ResultsHub;
  onRejected(reason: RejectReason): void;
  /** A stream whose client stopped reading was cut off (bounded-writer.ts); absent: not reported. */
  onStreamCutOff?(stream: string, err: Error): void;
  /** Tokens this worker's stages routed per (layer, expert) since it started (Status reply);
   * none when absent. */
  expertTokens?(): ExpertTokenCount[];
  /** Whether a plan is still being applied here (standbys included); false when absent. */
  loading?(): boolean;
}

/** The Worker service's RPCs served here; the hand-over ones come from the worker (worker-node.ts). */
export type WorkerServiceHandlers = Pick<WorkerHandlers, 'Forward' | 'Results' | 'Release' | 'Status' | 'RunExperts'>;
/** CommitPlan and FetchKv: the worker side of a planned hand-over. */
export type HandoverHandlers = Pick<WorkerHandlers, 'CommitPlan' | 'FetchKv'>;

type UnaryHandler<C, B> = (call: C, callback: B) => void;

/** `handler` behind the access check; a refused call gets its status and the handler never runs. */
function guardUnary<C extends AuthCall, B extends (err: ReturnType<typeof toServiceError>) => void>(access: WorkerAccess, method: WorkerMethod, handler: UnaryHandler<C, B>): UnaryHandler<C, B> {
  return (call, callback) => {
    try {
      access.check(call, method);
    } catch (err) {
      callback(toServiceError(err));
      return;
    }
    handler(call, callback);
  };
}

function guardStream<C extends AuthCall & { emit(event: 'error', err: unknown): boolean }>(access: WorkerAccess, method: WorkerMethod, handler: (call: C) => void): (call: C) => void {
  return (call) => {
    try {
      access.check(call, method);
    } catch (err) {
      failCall(call, err);
      return;
    }
    handler(call);
  };
}

/** The CommitPlan and FetchKv handlers behind the same checks as the rest of the service. */
export function guardHandover(access: WorkerAccess, handover: Partial<HandoverHandlers>): Partial<HandoverHandlers> {
  return {
    ...(handover.CommitPlan === undefined ? {} : { CommitPlan: guardUnary(access, 'CommitPlan', handover.CommitPlan) }),
    ...(handover.FetchKv === undefined ? {} : { FetchKv: guardStream(access, 'FetchKv', handover.FetchKv) }),
  };
}

export function workerServiceHandlers(state: WorkerState, access: WorkerAccess = OPEN_WORKER_ACCESS, maxUnsentAckBytes = MAX_UNSENT_ACK_BYTES): WorkerServiceHandlers {
  return {
    Forward: (call) => handleForward(state, call, access, maxUnsentAckBytes),

    Results: guardStream(access, 'Results', (call: Parameters<WorkerHandlers['Results']>[0]) => {
      const epoch = state.servingEpoch();
      if (epoch !== call.request.planEpoch) {
        failCall(call, new StaleEpochError(call.request.planEpoch, epoch ?? 0));
        return;
      }
      state.results.subscribe(call);
    }),

    Release: guardUnary(access, 'Release', (call: Parameters<WorkerHandlers['Release']>[0], callback: Parameters<WorkerHandlers['Release']>[1]) => {
      const ids = call.request.sequenceIds.map(sequenceId);
      Promise.all(state.runners().map((r) => r.stage.release(ids))).then(
        (counts) => callback(null, { released: counts.reduce((a, b) => Math.max(a, b), 0) }),
        (err: unknown) => callback(toServiceError(err)),
      );
    }),

    Status: guardUnary(access, 'Status', (_call: Parameters<WorkerHandlers['Status']>[0], callback: Parameters<WorkerHandlers['Status']>[1]) => {
      const runners = state.runners();
      callback(null, {
        workerId: state.workerId,
        planEpoch: state.servingEpoch() ?? 0,
        hasRange: runners.length > 0,
        // Stages served here are adjacent in practice (a standby takes over its neighbour's range).
        layerStart: runners[0]?.assignment.range.start ?? 0,
        layerEnd: runners[runners.length - 1]?.assignment.range.end ?? 0,
        sequences: Math.max(0, ...runners.map((r) => r.stage.stats.sequenceCount)),
        kvCacheBytes: runners.reduce((n, r) => n + r.stage.stats.kvCacheBytes, 0),
        serving: state.isServing(),
        expertTokens: state.expertTokens?.() ?? [],
        loading: state.loading?.() ?? false,
      });
    }),

    RunExperts: guardUnary(access, 'RunExperts', (call: Parameters<WorkerHandlers['RunExperts']>[0], callback: Parameters<WorkerHandlers['RunExperts']>[1]) => {
      runExperts(state, call.request).then(
        (reply) => callback(null, reply),
        (err: unknown) => callback(toServiceError(err)),
      );
    }),
  };
}

async function runExperts(state: WorkerState, request: ExpertRequest): Promise<ExpertReply> {
  if (!state.isServing()) throw new UnavailableError(`worker ${state.workerId} is not serving (lease not confirmed)`);
  const epoch = state.servingEpoch();
  if (epoch !== request.planEpoch) throw new StaleEpochError(request.planEpoch, epoch ?? 0);
  const experts = state.experts();
  if (experts === undefined) throw new FailedPreconditionError(`worker ${state.workerId} holds no experts`);
  const calls = request.calls.map((c, i) => {
    const shape = c.x?.shape ?? [];
    const x = decodeF32(c.x, `expert call ${i}`, [-1, -1]);
    return { expert: c.expert, x, tokens: shape[0] };
  });
  const outputs = await experts.run(request.layer, calls);
  return { outputs: outputs.map((y, i) => encodeF32(y, [calls[i].tokens, y.length / Math.max(1, calls[i].tokens)])) };
}

/** A refused Forward stream ends with the refusal's status and counts as one rejected frame. */
function refuseStream(state: WorkerState, call: Parameters<WorkerHandlers['Forward']>[0], err: unknown): void {
  state.onRejected(asBoraError(err).code === 'PERMISSION_DENIED' ? 'permission_denied' : 'unauthenticated');
  failCall(call, err);
}

function handleForward(state: WorkerState, call: Parameters<WorkerHandlers['Forward']>[0], access: WorkerAccess, maxUnsentAckBytes: number): void {
  let who: Identity | undefined;
  try {
    who = access.check(call, 'Forward');
  } catch (err) {
    refuseStream(state, call, err);
    return;
  }
  const reassembler = new Reassembler<ActivationFrame>((f) => f.hidden);
  let paused = false;
  let refused = false;
  call.on('end', () => call.end());
  const acks = new BoundedWriter(call, maxUnsentAckBytes, ackBytes, 'Forward acks', (err) => {
    refused = true;
    state.onStreamCutOff?.('Forward', err);
  });

  const reject = (batchId: number, reason: RejectReason, err: unknown): void => {
    state.onRejected(reason);
    const bora = asBoraError(err);
    acks.write({ batchId, error: bora.message, code: STATUS_BY_CODE[bora.code] });
  };

  call.on('data', (chunk: ActivationFrame) => {
    if (refused) return;
    // A stream outlives plans: a worker that has left the plan since it opened is cut off.
    if (!access.stillAllowed(who, 'Forward')) {
      refused = true;
      refuseStream(state, call, new PermissionDeniedError(`Forward from worker/${who?.id}: no longer a worker of the current plan`));
      return;
    }
    let assembled;
    try {
      assembled = reassembler.push(chunk);
    } catch (err) {
      reject(chunk.batchId, 'malformed', err);
      return;
    }
    if (assembled === undefined) return;
    const { frame: head, tensor } = assembled;
    const runner = state.runnerFor(head.stageIndex);
    const epoch = state.servingEpoch();
    // Self-fenced (lease renewals failing): refuse, unless the coordinator reports that etcd is
    // unreachable for it too; then no plan can change and this epoch stays the only one.
    if (!state.isServing() && !head.etcdOutage) return reject(head.batchId, 'not_serving', new UnavailableError(`worker ${state.workerId} is not serving (lease not confirmed)`));
    if (epoch !== head.planEpoch) return reject(head.batchId, 'stale_epoch', new StaleEpochError(head.planEpoch, epoch ?? 0));
    if (runner === undefined) {
      const served = state.runners().map((r) => r.assignment.stageIndex);
      return reject(head.batchId, 'malformed', new FailedPreconditionError(`frame for stage ${head.stageIndex}, this worker serves ${served.length === 0 ? 'no stage' : `stage ${served.join(', ')}`}`));
    }
    let frame;
    try {
      frame = decodeStageFrame(head, tensor, runner.stage.config.hiddenSize);
    } catch (err) {
      return reject(head.batchId, 'malformed', err);
    }
    runner.enqueue(frame);
    acks.write({ batchId: head.batchId, error: '', code: 0 });
    if (runner.queueDepth >= MAX_QUEUED_FRAMES && !paused) {
      // Stop reading: HTTP/2 flow control then holds the sender back until the queue drains.
      paused = true;
      call.pause();
      void runner.whenBelow(MAX_QUEUED_FRAMES / 2).then(() => {
        paused = false;
        call.resume();
      });
    }
  });
}

/**
 * `handover`: the CommitPlan and FetchKv handlers (worker-node.ts); without them those calls are
 * UNIMPLEMENTED. `access` checks every call (no checks without TLS).
 */
export function addWorkerService(server: grpc.Server, state: WorkerState, handover: Partial<HandoverHandlers> = {}, access: WorkerAccess = OPEN_WORKER_ACCESS): void {
  server.addService(boraProto().Worker.service, { ...workerServiceHandlers(state, access), ...guardHandover(access, handover) });
}
