/**
 * The audit log: one JSON object per line, `{"when", "who", "what", "outcome", "detail"}`, for
 * every admin call, authentication failure, refused node, node admission and plan change.
 *
 *   when     ISO-8601 UTC time of the event
 *   who      the principal: `worker/w1` from a certificate, `key:ops` from an API key, or the
 *            peer address when nobody could be identified
 *   what     the action, e.g. `Drain`, `authenticate`, `register`, `plan.publish`
 *   outcome  `ok`, `refused` (a security decision said no) or `failed` (allowed, then errored)
 *   detail   free-form context (an error message, a plan epoch)
 *
 * Writing never blocks the caller and never grows without bound: a flood of refused calls is
 * exactly what an attacker would produce. Lines go to a stream; when more than maxBufferedBytes
 * wait unwritten, further events are counted instead, and the count is written as a `dropped`
 * event once the stream drains. Each line is capped at maxLineBytes (detail is cut first).
 */
import { createWriteStream } from 'node:fs';
import type { Writable } from 'node:stream';

export type AuditOutcome = 'ok' | 'refused' | 'failed';

export interface AuditEvent {
  readonly who: string;
  readonly what: string;
  readonly outcome: AuditOutcome;
  readonly detail?: string | Readonly<Record<string, unknown>>;
}

export interface AuditRecord extends AuditEvent {
  readonly when: string;
}

export interface AuditLogOptions {
  /** Wall-clock milliseconds since the epoch (audit times are for people, not intervals). */
  readonly nowMs?: () => number;
  readonly maxBufferedBytes?: number;
  readonly maxLineBytes?: number;
}

export const DEFAULT_AUDIT_MAX_BUFFERED_BYTES = 1 << 20;
export const DEFAULT_AUDIT_MAX_LINE_BYTES = 4_096;
const FIELD_MAX_CHARS = 256;

function clip(text: string, maxChars: number): string {
  return text.length <= maxChars ? text : `${text.slice(0, maxChars)}...`;
}

export class AuditLog {
  private readonly nowMs: () => number;
  private readonly maxBufferedBytes: number;
  private readonly maxLineBytes: number;
  private droppedEvents = 0;
  private droppedTotal = 0;

  constructor(
    private readonly sink: Writable,
    options: AuditLogOptions = {},
  ) {
    this.nowMs = options.nowMs ?? Date.now;
    this.maxBufferedBytes = options.maxBufferedBytes ?? DEFAULT_AUDIT_MAX_BUFFERED_BYTES;
    this.maxLineBytes = options.maxLineBytes ?? DEFAULT_AUDIT_MAX_LINE_BYTES;
    sink.on('drain', () => this.reportDropped());
  }

  /** Events not written because the sink was backed up, since this log was opened. */
  dropped(): number {
    return this.droppedTotal;
  }

  record(event: AuditEvent): void {
    if (this.sink.writableLength > this.maxBufferedBytes) {
      this.droppedEvents += 1;
      this.droppedTotal += 1;
      return;
    }
    this.reportDropped();
    this.sink.write(this.line(event));
  }

  /** Flushes and closes the sink. */
  close(): Promise<void> {
    this.reportDropped();
    return new Promise((resolve, reject) => {
      this.sink.once('error', reject);
      this.sink.end(() => resolve());
    });
  }

  private reportDropped(): void {
    if (this.droppedEvents === 0 || this.sink.writableLength > this.maxBufferedBytes) return;
    const count = this.droppedEvents;
    this.droppedEvents = 0;
    this.sink.write(this.line({ who: 'audit', what: 'dropped', outcome: 'failed', detail: { events: count } }));
  }

  private line(event: AuditEvent): string {
    const record: AuditRecord = {
      when: new Date(this.nowMs()).toISOString(),
      who: clip(String(event.who), FIELD_MAX_CHARS),
      what: clip(String(event.what), FIELD_MAX_CHARS),
      outcome: event.outcome,
      ...(event.detail === undefined ? {} : { detail: event.detail }),
    };
    let text = JSON.stringify(record);
    if (Buffer.byteLength(text) > this.maxLineBytes) {
      const detail = typeof event.detail === 'string' ? event.detail : JSON.stringify(event.detail);
      text = JSON.stringify({ ...record, detail: clip(detail, Math.floor(this.maxLineBytes / 8)), truncated: true });
    }
    return `${text}\n`;
  }
}

/** An audit log appending to `path` (created with mode 0600: it names principals and addresses). */
export function openAuditFile(path: string, options: AuditLogOptions = {}): AuditLog {
  return new AuditLog(createWriteStream(path, { flags: 'a', mode: 0o600 }), options);
}
