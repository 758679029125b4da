/**
 * Server-sent events for a streamed completion, as OpenAI frames them: each event is one line
 * `data: {json}` and a blank line; the stream ends with `data: [DONE]`. No `event:` or `id:`
 * fields, no comments, no keep-alive lines: the bytes are exactly what OpenAI's clients parse.
 *
 * A client that stops reading would make the coordinator queue every event of its request: past
 * `maxUnsentBytes` of unsent data the connection is cut off and `onCutOff` cancels the request,
 * as BoundedWriter does for gRPC streams.
 */
import type { ServerResponse } from 'node:http';

export const SSE_DONE = 'data: [DONE]\n\n';

export function sseFrame(payload: unknown): string {
  return `data: ${JSON.stringify(payload)}\n\n`;
}

export class SseWriter {
  private cutOff = false;

  constructor(
    private readonly res: ServerResponse,
    private readonly maxUnsentBytes: number,
    private readonly onCutOff: () => void,
  ) {}

  /** Sends the 200 and the event-stream headers at once, so the client sees the stream start. */
  open(): void {
    this.res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      // Proxies such as nginx buffer responses unless told not to.
      'x-accel-buffering': 'no',
    });
    this.res.flushHeaders();
  }

  get isOpen(): boolean {
    return !this.cutOff && !this.res.destroyed && !this.res.writableEnded;
  }

  send(payload: unknown): void {
    this.write(sseFrame(payload));
  }

  /** `data: [DONE]` and the end of the response. */
  done(): void {
    if (!this.isOpen) return;
    this.res.end(SSE_DONE);
  }

  /** An error after the stream began: one `data: {"error": ...}` event, then the end (no [DONE]). */
  fail(body: unknown): void {
    if (!this.isOpen) return;
    this.res.end(sseFrame(body));
  }

  private write(frame: string): void {
    if (!this.isOpen) return;
    this.res.write(frame);
    if (this.res.writableLength > this.maxUnsentBytes) {
      this.cutOff = true;
      this.res.destroy();
      this.onCutOff();
    }
  }
}
