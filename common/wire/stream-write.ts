/**
 * Writing a server stream with backpressure: the next message waits until the previous ones have
 * gone out, so a slow reader holds the sender's source data, not that data plus every serialized
 * message queued behind its HTTP/2 window. A client that goes away ends the wait.
 */
import type { ServerWritableStream } from '@grpc/grpc-js';

/** Writes `message`; resolves once the stream can take more. False when the call was cancelled. */
export async function writeWithBackpressure<Req, Res>(call: ServerWritableStream<Req, Res>, message: Res): Promise<boolean> {
  if (call.cancelled) return false;
  if (call.write(message)) return true;
  await new Promise<void>((resolve) => {
    const done = (): void => {
      call.off('drain', done);
      call.off('cancelled', done);
      resolve();
    };
    call.on('drain', done);
    call.on('cancelled', done);
  });
  return !call.cancelled;
}
