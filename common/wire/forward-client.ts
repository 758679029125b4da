/**
 * The sending end of a Forward stream: the coordinator into stage 1, each stage into the next.
 * Frames are written chunk by chunk, honouring backpressure: when write() returns false the
 * sender waits for 'drain', and a peer that does not drain within the idle bound (a paused or
 * blackholed process) breaks the stream instead of hanging it.
 */
import * as grpc from '@grpc/grpc-js';
import { UnavailableError } from '../errors';
import { INSECURE, dialNode, type NodeSecurity } from '../security/node-security';
import type { ActivationFrame, ForwardAck } from './messages';
import { encodeStageFrame, type StageFrame } from './frames';
import { MAX_NODE_MESSAGE_BYTES, boraProto, channelOptions, type WorkerClient } from './proto';

export interface ForwardClientOptions {
  readonly hiddenSize: number;
  /** A write that cannot drain for this long breaks the stream. */
  readonly drainTimeoutMs: number;
  readonly keepaliveTimeMs: number;
  readonly keepaliveTimeoutMs: number;
  /** Called when the receiver refuses a frame (its ack carries an error). */
  readonly onRejected?: (batchId: number, message: string, code: number) => void;
  /** Called once when the stream breaks for any reason other than close(). */
  readonly onBroken?: (err: Error) => void;
  /** The sender's transport security; plaintext when absent. */
  readonly security?: NodeSecurity;
}

export class ForwardClient {
  private readonly client: WorkerClient;
  private readonly call: grpc.ClientDuplexStream<ActivationFrame, ForwardAck>;
  private broken: Error | undefined;
  private closing = false;
  /** Serialises send() calls so the chunks of two frames never interleave. */
  private tail: Promise<void> = Promise.resolve();

  constructor(
    readonly address: string,
    private readonly options: ForwardClientOptions,
  ) {
    const Worker = boraProto().Worker;
    const dial = dialNode(options.security ?? INSECURE, address);
    this.client = new Worker(address, dial.credentials, { ...channelOptions(options.keepaliveTimeMs, options.keepaliveTimeoutMs, MAX_NODE_MESSAGE_BYTES), ...dial.options });
    this.call = this.client.forward();
    this.call.on('data', (ack: ForwardAck) => {
      if (ack.error !== '') options.onRejected?.(ack.batchId, ack.error, ack.code);
    });
    this.call.on('error', (err: Error) => this.fail(err));
    this.call.on('end', () => this.fail(new UnavailableError(`forward stream to ${address} ended`)));
  }

  get isBroken(): boolean {
    return this.broken !== undefined;
  }

  private fail(err: Error): void {
    if (this.broken !== undefined) return;
    this.broken = err;
    if (!this.closing) this.options.onBroken?.(err);
  }

  /** Resolves once every chunk of the frame has been handed to the stream. */
  send(frame: StageFrame): Promise<void> {
    const result = this.tail.then(() => this.write(frame));
    this.tail = result.catch(() => undefined);
    return result;
  }

  private async write(frame: StageFrame): Promise<void> {
    for (const chunk of encodeStageFrame(frame, this.options.hiddenSize)) {
      if (this.broken !== undefined) throw new UnavailableError(`forward stream to ${this.address} is broken: ${this.broken.message}`, { cause: this.broken });
      if (!this.call.write(chunk)) await this.waitDrain();
    }
  }

  private waitDrain(): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        const err = new UnavailableError(`forward stream to ${this.address} did not drain within ${this.options.drainTimeoutMs} ms`);
        this.fail(err);
        this.call.cancel();
        reject(err);
      }, this.options.drainTimeoutMs);
      const onDrain = (): void => {
        cleanup();
        resolve();
      };
      const onError = (err: Error): void => {
        cleanup();
        reject(err);
      };
      const cleanup = (): void => {
        clearTimeout(timer);
        this.call.off('drain', onDrain);
        this.call.off('error', onError);
      };
      this.call.on('drain', onDrain);
      this.call.on('error', onError);
    });
  }

  close(): void {
    this.closing = true;
    this.call.end();
    this.call.cancel();
    this.client.close();
  }
}
