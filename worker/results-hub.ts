/**
 * The last stage's results, written to the coordinator's Results stream(s) for the current plan
 * epoch. Results produced while no coordinator is subscribed wait in a small bounded buffer (the
 * coordinator subscribes before it sends, so this only bridges a reconnect).
 */
import { Metadata } from '@grpc/grpc-js';
import type { ResourceExhaustedError } from '../common/errors';
import { BoundedWriter } from '../common/wire/bounded-writer';
import { encodeResult, type ResultBatch } from '../common/wire/frames';
import type { ResultFrame } from '../common/wire/messages';
import type { WorkerHandlers } from '../common/wire/proto';

const MAX_BUFFERED_RESULTS = 256;

/**
 * Result bytes a subscriber may leave unsent before it is cut off with RESOURCE_EXHAUSTED: many
 * micro-batches of full logits (a 64-row batch of a 32000-token vocabulary is 8 MiB), so a
 * coordinator on a slow link is never cut off, and one that stopped reading costs at most this.
 */
export const MAX_UNSENT_RESULT_BYTES = 64 * 1024 * 1024;

/** A result frame's size in bytes: its logits plus a little for each slice and the rest. */
const resultFrameBytes = (f: ResultFrame): number => (f.logits?.data.byteLength ?? 0) + 64 + f.slices.length * 48;

/** A coordinator's Results call. */
type Subscriber = Parameters<WorkerHandlers['Results']>[0];

export class ResultsHub {
  private readonly subscribers = new Map<Subscriber, BoundedWriter<ResultFrame>>();
  private buffered: ResultBatch[] = [];

  constructor(
    private readonly vocabSize: () => number,
    private readonly maxUnsentBytes = MAX_UNSENT_RESULT_BYTES,
    /** Told when a subscriber that stopped reading is cut off. */
    private readonly onCutOff: (err: ResourceExhaustedError) => void = () => undefined,
  ) {}

  subscribe(call: Subscriber): void {
    this.subscribers.set(
      call,
      new BoundedWriter<ResultFrame>(call, this.maxUnsentBytes, resultFrameBytes, 'Results', (err) => {
        this.subscribers.delete(call);
        this.onCutOff(err);
      }),
    );
    // Headers now, so the coordinator knows the subscription is in place before it sends.
    call.sendMetadata(new Metadata());
    const drop = (): void => {
      this.subscribers.delete(call);
    };
    call.on('cancelled', drop);
    call.on('close', drop);
    call.on('error', drop);
    const pending = this.buffered.filter((r) => r.planEpoch === call.request.planEpoch);
    this.buffered = [];
    for (const result of pending) this.write(call, result);
  }

  publish(result: ResultBatch): void {
    const targets = [...this.subscribers.keys()].filter((s) => s.request.planEpoch === result.planEpoch);
    if (targets.length === 0) {
      this.buffered.push(result);
      if (this.buffered.length > MAX_BUFFERED_RESULTS) this.buffered.shift();
      return;
    }
    for (const call of targets) this.write(call, result);
  }

  private write(call: Subscriber, result: ResultBatch): void {
    const writer = this.subscribers.get(call);
    // A cut-off subscriber gets nothing more; the others carry on.
    for (const frame of encodeResult(result, this.vocabSize())) if (writer?.write(frame) !== true) return;
  }

  /** Ends every subscription (the plan changed or the worker is stopping). */
  closeAll(): void {
    for (const call of this.subscribers.keys()) call.end();
    this.subscribers.clear();
    this.buffered = [];
  }
}
