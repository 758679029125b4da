/**
 * A server stream's writes, bounded. HTTP/2 flow control stops the bytes on the wire when a
 * client stops reading, but not the writes: grpc-js queues every message written after that in
 * the call's own Writable queue (and about one message in the HTTP/2 stream), without limit. A
 * write's callback fires once grpc-js has handed its bytes to HTTP/2 and HTTP/2 has sent them
 * within the window, so "written and not yet called back" is exactly what the server holds for
 * the client (measured against grpc-js 1.14 by test/unit/wire/bounded-writer.test.ts: with the
 * client paused the callbacks stop and the queue grows by every write).
 *
 * Past the limit the stream is cut off. A status cannot reach a client that does not read (grpc-js
 * sends the trailers only after every queued message), so the cut-off resets the HTTP/2 stream
 * with ENHANCE_YOUR_CALM, which drops what it holds and which grpc-js clients report as
 * RESOURCE_EXHAUSTED; grpc-js then reports the call 'cancelled' to its handler, which stops the
 * work behind it. grpc-js gives a handler no handle on the HTTP/2 stream, so the reset goes
 * through its call internals (the test pins that it works for the installed version); the
 * status is also queued through the public API, for a client that does read again.
 */
import { constants as http2 } from 'node:http2';
import { ResourceExhaustedError } from '../errors';
import { failCall } from './grpc-status';

/** What a bounded stream needs of a grpc-js server stream. */
export interface WritableCall<T> {
  write(message: T, callback: () => void): boolean;
  emit(event: 'error', err: unknown): boolean;
}

export class BoundedWriter<T> {
  private unsent = 0;
  private cut = false;

  constructor(
    private readonly call: WritableCall<T>,
    /** Bytes written and not yet sent before the stream is cut off. */
    private readonly maxUnsentBytes: number,
    /** A message's size in bytes, near enough (its large fields plus a little). */
    private readonly sizeOf: (message: T) => number,
    /** The stream, for the status message ("Results", "Generate"). */
    private readonly what: string,
    /** Told once, when the stream is cut off (to drop the subscriber, count and log it). */
    private readonly onCutOff: (err: ResourceExhaustedError) => void = () => undefined,
  ) {}

  /** Bytes written and not yet handed to the network. */
  get unsentBytes(): number {
    return this.unsent;
  }

  /** Whether the stream was cut off (writes are then dropped). */
  get isCutOff(): boolean {
    return this.cut;
  }

  /** Writes `message`, or cuts the stream off when it would pass the limit; false once cut off. */
  write(message: T): boolean {
    if (this.cut) return false;
    const bytes = this.sizeOf(message);
    // One message always goes through, however large: the limit is on what waits behind it.
    if (this.unsent > 0 && this.unsent + bytes > this.maxUnsentBytes) {
      this.cutOff();
      return false;
    }
    this.unsent += bytes;
    this.call.write(message, () => {
      this.unsent -= bytes;
    });
    return true;
  }

  private cutOff(): void {
    this.cut = true;
    const err = new ResourceExhaustedError(`${this.what}: the client is not reading; over ${this.maxUnsentBytes} bytes were waiting to be sent to it`);
    failCall(this.call, err);
    http2StreamOf(this.call)?.close(http2.NGHTTP2_ENHANCE_YOUR_CALM);
    this.onCutOff(err);
  }
}

interface ResettableStream {
  close(code: number): void;
  destroyed: boolean;
}

/**
 * The HTTP/2 stream under a grpc-js server call: the call's `call` is an intercepting call whose
 * `nextCall` chain ends in the one that holds `stream`.
 */
export function http2StreamOf(call: object): ResettableStream | undefined {
  let node = (call as { call?: object }).call;
  for (let depth = 0; node !== undefined && depth < 8; depth++) {
    const stream = (node as { stream?: ResettableStream }).stream;
    if (stream !== undefined && typeof stream.close === 'function') return stream.destroyed ? undefined : stream;
    node = (node as { nextCall?: object }).nextCall;
  }
  return undefined;
}
