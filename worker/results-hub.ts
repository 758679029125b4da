/**
 * The last stage's results, written to the coordinator's Results stream(s) for the current plan
 * epoch. Results produced while no coordinator is subscribed wait in a small bounded buffer (the
 * coordinator subscribes before it sends, so this only bridges a reconnect).
 */
import { Metadata } from '@grpc/grpc-js';
import { encodeResult, type ResultBatch } from '../common/wire/frames';
import type { WorkerHandlers } from '../common/wire/proto';

const MAX_BUFFERED_RESULTS = 256;

/** A coordinator's Results call. */
type Subscriber = Parameters<WorkerHandlers['Results']>[0];

export class ResultsHub {
  private readonly subscribers = new Set<Subscriber>();
  private buffered: ResultBatch[] = [];

  constructor(private readonly vocabSize: () => number) {}

  subscribe(call: Subscriber): void {
    this.subscribers.add(call);
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
    const targets = [...this.subscribers].filter((s) => s.request.planEpoch === result.planEpoch);
    if (targets.length === 0) {
      this.buffered.push(result);
      if (this.buffered.length > MAX_BUFFERED_RESULTS) this.buffered.shift();
      return;
    }
    for (const call of targets) this.write(call, result);
  }

  private write(call: Subscriber, result: ResultBatch): void {
    for (const frame of encodeResult(result, this.vocabSize())) call.write(frame);
  }

  /** Ends every subscription (the plan changed or the worker is stopping). */
  closeAll(): void {
    for (const call of this.subscribers) call.end();
    this.subscribers.clear();
    this.buffered = [];
  }
}
