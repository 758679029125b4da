/**
 * The figures reported per scenario, as pure functions of what was recorded (all times in ms on
 * the run's clock):
 * - detection: fault -> first Status reply showing a plan epoch above the one before the fault;
 * - next token: fault -> the first token any stream received after it;
 * - recovery: fault -> the token that ended the longest stall after the fault (the tokens of
 *   micro-batches already past the failed stage can arrive just after a fault, so "the next
 *   token" alone would report a recovery that did not happen); the stall is searched from the
 *   fault to the next fault or heal, plus the first token after that. A fault that stalls
 *   nothing (no gap of STALL_MIN_MS) recovers with the next token;
 * - inter-token latency: gaps between consecutive tokens of one stream, over every stream;
 * - reshards: plan epochs published between two instants.
 */
import type { EtcdEvent, StatusSample } from './observer';
import type { RequestRecord } from './workload';

/** Nearest-rank percentile (p in [0, 100]) of `values`; undefined when empty. */
export function percentile(values: readonly number[], p: number): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1];
}

export function interTokenGapsMs(records: readonly RequestRecord[]): number[] {
  const gaps: number[] = [];
  for (const r of records) {
    for (const a of r.attempts) {
      for (let i = 1; i < a.tokens.length; i++) gaps.push(a.tokens[i].atMs - a.tokens[i - 1].atMs);
    }
  }
  return gaps;
}

export interface LatencySummary {
  readonly p50Ms: number | null;
  readonly p95Ms: number | null;
  /** S12's bound is on the tail: admitted streams must not stall behind refused ones. */
  readonly p99Ms: number | null;
}

export function latencySummary(records: readonly RequestRecord[]): LatencySummary {
  const gaps = interTokenGapsMs(records);
  return { p50Ms: round(percentile(gaps, 50)), p95Ms: round(percentile(gaps, 95)), p99Ms: round(percentile(gaps, 99)) };
}

/**
 * Fault -> the first Status (any coordinator) with a plan epoch above `epochBefore`, timed when
 * the call was sent: the coordinator reads its plan as the call arrives, then waits up to 1 s
 * per unreachable worker before replying, so the reply's arrival would add that wait.
 */
export function detectionMs(statuses: readonly StatusSample[], faultAtMs: number, epochBefore: number): number | undefined {
  const seen = statuses.filter((s) => s.sentAtMs >= faultAtMs && s.status !== undefined && s.status.planEpoch > epochBefore).map((s) => s.sentAtMs);
  return seen.length === 0 ? undefined : Math.min(...seen) - faultAtMs;
}

/** Fault -> the first token after it. `arrivalsMs` sorted. */
export function nextTokenMs(arrivalsMs: readonly number[], faultAtMs: number): number | undefined {
  const next = arrivalsMs.find((t) => t > faultAtMs);
  return next === undefined ? undefined : next - faultAtMs;
}

/** A gap between tokens (all streams together) shorter than this is not a stall. */
export const STALL_MIN_MS = 500;

/**
 * Fault -> the arrival that ended the longest gap in the token stream (all streams together)
 * between the fault and `windowEndMs` (the next fault or heal); the next arrival when no gap
 * reaches STALL_MIN_MS. Gaps are clipped at the window's end, so a stall that the next fault
 * caused is not charged to this one, while a stall lasting through the whole window ends with
 * the first arrival after it.
 */
export function recoveryMs(arrivalsMs: readonly number[], faultAtMs: number, windowEndMs: number): number | undefined {
  let previous = faultAtMs;
  let best: { gap: number; at: number } | undefined;
  for (const t of arrivalsMs) {
    if (t <= faultAtMs) continue;
    const gap = Math.min(t, windowEndMs) - previous;
    if (best === undefined || gap > best.gap) best = { gap, at: t };
    if (t >= windowEndMs) break;
    previous = t;
  }
  if (best === undefined) return undefined;
  return best.gap >= STALL_MIN_MS ? best.at - faultAtMs : nextTokenMs(arrivalsMs, faultAtMs);
}

/** The longest gap between consecutive arrivals (all streams) inside [fromMs, toMs], counting the edges. */
export function longestStallMs(arrivalsMs: readonly number[], fromMs: number, toMs: number): number {
  let previous = fromMs;
  let longest = 0;
  for (const t of arrivalsMs) {
    if (t <= fromMs) continue;
    const at = Math.min(t, toMs);
    longest = Math.max(longest, at - previous);
    previous = at;
    if (t >= toMs) return longest;
  }
  return Math.max(longest, toMs - previous);
}

/** Plans put in etcd within [fromMs, toMs], in the order seen. */
export function planPuts(events: readonly EtcdEvent[], fromMs = -Infinity, toMs = Infinity): { atMs: number; epoch: number }[] {
  return events.flatMap((e) => (e.type === 'put' && e.plan !== undefined && e.atMs >= fromMs && e.atMs <= toMs ? [{ atMs: e.atMs, epoch: e.plan.epoch }] : []));
}

/** Highest plan epoch in etcd at `atMs` (0 before any). */
export function epochAt(events: readonly EtcdEvent[], atMs: number): number {
  return planPuts(events, -Infinity, atMs).reduce((max, p) => Math.max(max, p.epoch), 0);
}

/** Plan epoch delta over [fromMs, toMs]. */
export function reshards(events: readonly EtcdEvent[], fromMs: number, toMs: number): number {
  return epochAt(events, toMs) - epochAt(events, fromMs);
}

export function round(value: number | undefined): number | null {
  return value === undefined ? null : Math.round(value);
}
