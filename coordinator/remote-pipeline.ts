/**
 * The cluster's data path for one plan epoch, as seen from the coordinator:
 *   coordinator --Forward--> stage 0 --> ... --> last stage --Results--> coordinator.
 * run() sends a micro-batch into stage 0 and resolves when its logits come back from the last
 * stage. Any broken stream, or a micro-batch that does not come back within the step timeout,
 * breaks the whole pipeline: every pending run() rejects with UNAVAILABLE (retryable), and the
 * scheduler replays its sequences on the next plan.
 */
import * as grpc from '@grpc/grpc-js';
import type { SliceInput } from '../common/engine/stage-engine';
import { InvalidArgumentError, UnavailableError, type BoraError } from '../common/errors';
import type { Pipeline } from '../common/generation/pipeline';
import type { SequenceId } from '../common/ids';
import { INSECURE, dialNode, type NodeSecurity } from '../common/security/node-security';
import { ForwardClient } from '../common/wire/forward-client';
import { Reassembler, decodeResult } from '../common/wire/frames';
import { fromServiceError, fromStatus } from '../common/wire/grpc-status';
import type { ResultFrame } from '../common/wire/messages';
import { MAX_NODE_MESSAGE_BYTES, boraProto, channelOptions, type WorkerClient } from '../common/wire/proto';

export interface RemotePipelineOptions {
  readonly epoch: number;
  /** Worker address of each stage, in order. */
  readonly stageAddresses: readonly string[];
  readonly hiddenSize: number;
  readonly vocabSize: number;
  /** Micro-batches in flight at once; defaults to the number of stages. */
  readonly depth?: number;
  /** A micro-batch not back within this long breaks the pipeline. */
  readonly stepTimeoutMs: number;
  readonly keepaliveTimeMs: number;
  readonly keepaliveTimeoutMs: number;
  readonly onBroken?: (err: BoraError) => void;
  /** Whether etcd is unreachable for the coordinator right now (stamped on every frame). */
  readonly etcdOutage?: () => boolean;
  /** The coordinator's transport security (its certificate on every stream); plaintext when absent. */
  readonly security?: NodeSecurity;
}

interface Pending {
  resolve(logits: Float32Array): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
  sentAtMs: number;
}

/** Round trips remembered for the typical step time. */
const STEP_HISTORY = 32;

export class RemotePipeline implements Pipeline {
  readonly epoch: number;
  readonly depth: number;
  private readonly clients: WorkerClient[];
  private readonly forward: ForwardClient;
  private results: grpc.ClientReadableStream<ResultFrame> | undefined;
  private readonly pending = new Map<number, Pending>();
  private broken: BoraError | undefined;
  private readonly stepMs: number[] = [];

  private constructor(private readonly options: RemotePipelineOptions) {
    this.epoch = options.epoch;
    this.depth = options.depth ?? options.stageAddresses.length;
    const Worker = boraProto().Worker;
    const channel = channelOptions(options.keepaliveTimeMs, options.keepaliveTimeoutMs, MAX_NODE_MESSAGE_BYTES);
    const security = options.security ?? INSECURE;
    this.clients = options.stageAddresses.map((a) => {
      const dial = dialNode(security, a);
      return new Worker(a, dial.credentials, { ...channel, ...dial.options });
    });
    this.forward = new ForwardClient(options.stageAddresses[0], {
      security,
      hiddenSize: options.hiddenSize,
      drainTimeoutMs: options.stepTimeoutMs,
      keepaliveTimeMs: options.keepaliveTimeMs,
      keepaliveTimeoutMs: options.keepaliveTimeoutMs,
      onRejected: (batchId, message, code) => this.onBatchError(batchId, code, message),
      onBroken: (err) => this.breakWith(new UnavailableError(`stage 0 (${options.stageAddresses[0]}): ${err.message}`, { cause: err })),
    });
  }

  /** Opens the streams; resolves once the last stage has accepted the results subscription. */
  static async open(options: RemotePipelineOptions): Promise<RemotePipeline> {
    const pipeline = new RemotePipeline(options);
    await pipeline.subscribe();
    return pipeline;
  }

  private subscribe(): Promise<void> {
    const last = this.clients[this.clients.length - 1];
    const address = this.options.stageAddresses[this.clients.length - 1];
    const call = last.results({ planEpoch: this.epoch });
    this.results = call;
    const reassembler = new Reassembler<ResultFrame>((f) => f.logits);
    call.on('data', (frame: ResultFrame) => {
      try {
        const done = reassembler.push(frame);
        if (done === undefined) return;
        const result = decodeResult(done.frame, done.tensor, this.options.vocabSize, this.options.hiddenSize);
        if (result.error !== undefined) this.onBatchError(result.batchId, result.error.code, result.error.message);
        else this.settle(result.batchId, result.logits!);
      } catch (err) {
        this.breakWith(new UnavailableError(`results from ${address} malformed: ${(err as Error).message}`, { cause: err }));
      }
    });
    return new Promise((resolve, reject) => {
      let confirmed = false;
      call.on('metadata', () => {
        confirmed = true;
        resolve();
      });
      call.on('error', (err: grpc.ServiceError) => {
        const bora = fromServiceError(err);
        const reason = bora.code === 'CANCELLED' ? 'results stream cancelled' : bora.message;
        const failure = new UnavailableError(`results stream from ${address}: ${reason}`, { cause: err });
        if (!confirmed) reject(failure);
        this.breakWith(failure);
      });
      call.on('end', () => {
        if (!confirmed) reject(new UnavailableError(`results stream from ${address} ended at once`));
        this.breakWith(new UnavailableError(`results stream from ${address} ended`));
      });
    });
  }

  get isBroken(): boolean {
    return this.broken !== undefined;
  }

  run(batchId: number, slices: readonly SliceInput[]): Promise<Float32Array> {
    return this.send(batchId, slices, false);
  }

  /** An embedding micro-batch: resolves to (slices, H) sums of final-normed hidden states. */
  embed(batchId: number, slices: readonly SliceInput[]): Promise<Float32Array> {
    return this.send(batchId, slices, true);
  }

  private send(batchId: number, slices: readonly SliceInput[], embed: boolean): Promise<Float32Array> {
    if (this.broken !== undefined) return Promise.reject(this.broken);
    return new Promise<Float32Array>((resolve, reject) => {
      const timer = setTimeout(
        () => this.breakWith(new UnavailableError(`micro-batch ${batchId} did not come back within ${this.options.stepTimeoutMs} ms`)),
        this.options.stepTimeoutMs,
      );
      this.pending.set(batchId, { resolve, reject, timer, sentAtMs: performance.now() });
      this.forward.send({ planEpoch: this.epoch, batchId, stageIndex: 0, slices, etcdOutage: this.options.etcdOutage?.() ?? false, ...(embed ? { embed } : {}) }).catch((err: Error) =>
        this.breakWith(new UnavailableError(`sending micro-batch ${batchId}: ${err.message}`, { cause: err })),
      );
    });
  }

  /**
   * A stage refused or failed a micro-batch (the frame carries the status code and message). A
   * bad request (InvalidArgumentError) fails only that micro-batch; anything else (a stale epoch,
   * a position out of step, a stage in trouble) means the pipeline no longer matches the plan, so
   * it breaks and its sequences are replayed. An error about a micro-batch this pipeline is not
   * waiting for is about one sent on an earlier data path of the same plan (reopened in place,
   * plan-lifecycle.ts), whose sequences have been replayed since: it is ignored, as its results are.
   */
  private onBatchError(batchId: number, code: number, message: string): void {
    if (!this.pending.has(batchId)) return;
    const err = fromStatus(code, message);
    if (err instanceof InvalidArgumentError) this.settle(batchId, err);
    else this.breakWith(new UnavailableError(`micro-batch ${batchId}: ${message}`));
  }

  private settle(batchId: number, outcome: Float32Array | BoraError): void {
    const p = this.pending.get(batchId);
    if (p === undefined) return;
    this.pending.delete(batchId);
    clearTimeout(p.timer);
    if (outcome instanceof Float32Array) {
      this.stepMs.push(performance.now() - p.sentAtMs);
      if (this.stepMs.length > STEP_HISTORY) this.stepMs.shift();
      p.resolve(outcome);
    } else p.reject(outcome);
  }

  /** How long the oldest micro-batch in flight has been waiting (0 when none is). */
  stalledMs(): number {
    let oldest = Infinity;
    for (const p of this.pending.values()) oldest = Math.min(oldest, p.sentAtMs);
    return oldest === Infinity ? 0 : performance.now() - oldest;
  }

  /** Median round trip of recent micro-batches (undefined before the first). */
  typicalStepMs(): number | undefined {
    if (this.stepMs.length === 0) return undefined;
    const sorted = [...this.stepMs].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)];
  }

  /** Breaks the pipeline from outside (a watchdog found a stage dead). */
  fail(err: BoraError): void {
    this.breakWith(err);
  }

  private breakWith(err: BoraError): void {
    if (this.broken !== undefined) return;
    this.broken = err;
    for (const [batchId] of this.pending) this.settle(batchId, err);
    this.options.onBroken?.(err);
    this.close();
  }

  /** Frees the sequences on every stage; rejects if any stage did not confirm (the caller retries later). */
  async release(ids: readonly SequenceId[]): Promise<void> {
    await Promise.all(
      this.clients.map(
        (client, i) =>
          new Promise<void>((resolve, reject) => {
            client.release({ planEpoch: this.epoch, sequenceIds: [...ids] }, { deadline: Date.now() + 2000 }, (err) =>
              err ? reject(new UnavailableError(`release on ${this.options.stageAddresses[i]}: ${err.message}`)) : resolve(),
            );
          }),
      ),
    );
  }

  close(): void {
    if (this.broken === undefined) this.broken = new UnavailableError(`pipeline of epoch ${this.epoch} closed`);
    for (const [batchId] of this.pending) this.settle(batchId, this.broken);
    this.forward.close();
    this.results?.cancel();
    for (const client of this.clients) client.close();
  }
}
