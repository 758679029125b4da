/**
 * One clock for everything a scenario run records: faults, observations, token arrivals and the
 * nodes' log lines are all stamped in milliseconds since the run's origin (performance.now(),
 * monotonic), so "fault -> new epoch -> next token" are differences on one axis. Every node runs
 * on this machine, so there is no clock skew to correct.
 */
import { appendFileSync } from 'node:fs';

export type TimelineKind = 'fault' | 'heal' | 'phase' | 'process' | 'note';

export interface TimelineEntry {
  /** ms since the origin. */
  readonly atMs: number;
  readonly kind: TimelineKind;
  readonly text: string;
}

export class Timeline {
  private readonly originMs = performance.now();
  readonly entries: TimelineEntry[] = [];

  /** `file`: where entries are appended as JSON lines as they happen (survives a crash). */
  constructor(private readonly file?: string) {}

  nowMs(): number {
    return performance.now() - this.originMs;
  }

  record(kind: TimelineKind, text: string): TimelineEntry {
    const entry: TimelineEntry = { atMs: this.nowMs(), kind, text };
    this.entries.push(entry);
    if (this.file !== undefined) appendFileSync(this.file, `${JSON.stringify(entry)}\n`);
    return entry;
  }

  /** "  12.345 s" for log prefixes. */
  stamp(atMs: number = this.nowMs()): string {
    return `${(atMs / 1000).toFixed(3).padStart(8)} s`;
  }

  faults(): TimelineEntry[] {
    return this.entries.filter((e) => e.kind === 'fault');
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
