/**
 * The properties every scenario asserts, as pure functions over the recorded event log. Each
 * returns the violations it found (empty = the property held), phrased for the report.
 */
import type { EtcdEvent, StatusSample, WorkerSample } from './observer';
import type { RequestRecord } from './workload';

const MAX_LISTED = 10;

function capped(violations: string[]): string[] {
  return violations.length <= MAX_LISTED ? violations : [...violations.slice(0, MAX_LISTED), `... and ${violations.length - MAX_LISTED} more`];
}

function firstDifference(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}

/** Completed outputs equal the reference token for token. */
export function outputMismatches(records: readonly RequestRecord[], reference: ReadonlyMap<number, readonly number[]>): string[] {
  const out: string[] = [];
  for (const r of records) {
    if (r.completed === undefined) continue;
    const expected = reference.get(r.lane) ?? [];
    const got = r.completed.tokens.map((t) => t.tokenId);
    if (got.length !== expected.length || firstDifference(got, expected) < got.length) {
      const at = firstDifference(got, expected);
      out.push(`lane ${r.lane} #${r.iteration}: ${got.length} tokens, first difference at index ${at} (got ${got[at] ?? 'none'}, expected ${expected[at] ?? 'none'})`);
    }
  }
  return capped(out);
}

/** Every attempt's token indices run 0, 1, 2, ... with no gap and no repeat; a completed one has maxTokens of them. */
export function indexViolations(records: readonly RequestRecord[]): string[] {
  const out: string[] = [];
  for (const r of records) {
    for (const [n, a] of r.attempts.entries()) {
      const bad = a.tokens.findIndex((t, i) => t.index !== i);
      if (bad >= 0) {
        const t = a.tokens[bad];
        const kind = bad > 0 && t.index <= a.tokens[bad - 1].index ? 'duplicate' : 'missing';
        out.push(`lane ${r.lane} #${r.iteration} attempt ${n}: ${kind} token: event ${bad} has index ${t.index}`);
      } else if (a.finished && a.tokens.length !== r.spec.maxTokens) {
        out.push(`lane ${r.lane} #${r.iteration} attempt ${n}: finished with ${a.tokens.length} tokens, ${r.spec.maxTokens} asked (ignore_eos)`);
      }
    }
  }
  return capped(out);
}

/** What a broken attempt showed before it broke is a prefix of the reference (no wrong token ever reached a client). */
export function partialOutputViolations(records: readonly RequestRecord[], reference: ReadonlyMap<number, readonly number[]>): string[] {
  const out: string[] = [];
  for (const r of records) {
    const expected = reference.get(r.lane) ?? [];
    for (const [n, a] of r.attempts.entries()) {
      if (a.finished) continue;
      const got = a.tokens.map((t) => t.tokenId);
      const at = firstDifference(got, expected);
      if (at < got.length) out.push(`lane ${r.lane} #${r.iteration} attempt ${n} (broken: ${a.error?.code}): token ${at} was ${got[at]}, expected ${expected[at]}`);
    }
  }
  return capped(out);
}

/** Requests that did not complete, with their last error. */
export function incomplete(records: readonly RequestRecord[]): string[] {
  return capped(
    records
      .filter((r) => r.completed === undefined)
      .map((r) => {
        const last = r.attempts[r.attempts.length - 1];
        return `lane ${r.lane} #${r.iteration}: ${r.attempts.length} attempt(s), last: ${last?.error?.code ?? 'none'} ${last?.error?.message ?? ''} after ${last?.tokens.length ?? 0} tokens`;
      }),
  );
}

/** Attempts that failed with a code other than UNAVAILABLE (the only one a client may retry on). */
export function nonRetryableErrors(records: readonly RequestRecord[]): string[] {
  return capped(
    records.flatMap((r) =>
      r.attempts.flatMap((a, n) => (a.error !== undefined && a.error.code !== 'UNAVAILABLE' ? [`lane ${r.lane} #${r.iteration} attempt ${n}: ${a.error.code}: ${a.error.message}`] : [])),
    ),
  );
}

/** Plans in etcd in revision order have strictly increasing epochs. */
export function epochOrderViolations(events: readonly EtcdEvent[]): string[] {
  const out: string[] = [];
  let last: { epoch: number; revision: number } | undefined;
  const puts = events.flatMap((e) => (e.type === 'put' && e.plan !== undefined ? [{ epoch: e.plan.epoch, revision: e.modRevision }] : []));
  for (const p of [...puts].sort((a, b) => a.revision - b.revision)) {
    if (last !== undefined && p.revision !== last.revision && p.epoch <= last.epoch) out.push(`plan epoch ${p.epoch} (revision ${p.revision}) after epoch ${last.epoch} (revision ${last.revision})`);
    last = p;
  }
  return capped(out);
}

/** [atMs, leaseId] intervals during which `members/<worker>` existed, from the etcd events. */
export function memberIntervals(events: readonly EtcdEvent[], worker: string): { fromMs: number; toMs: number; leaseId: string }[] {
  const intervals: { fromMs: number; toMs: number; leaseId: string }[] = [];
  let open: { fromMs: number; leaseId: string } | undefined;
  for (const e of events) {
    if (!e.key.endsWith(`/members/${worker}`)) continue;
    if (e.type === 'put') {
      if (open !== undefined && open.leaseId !== e.leaseId) {
        intervals.push({ ...open, toMs: e.atMs });
        open = undefined;
      }
      open ??= { fromMs: e.atMs, leaseId: e.leaseId };
    } else if (open !== undefined) {
      intervals.push({ ...open, toMs: e.atMs });
      open = undefined;
    }
  }
  if (open !== undefined) intervals.push({ ...open, toMs: Infinity });
  return intervals;
}

function isMemberAt(events: readonly EtcdEvent[], worker: string, atMs: number): boolean {
  return memberIntervals(events, worker).some((i) => i.fromMs <= atMs && atMs < i.toMs);
}

/**
 * At every sampled instant, at most one serving owner per layer. A worker is a serving owner
 * when its own Status says serving and it holds a range. Two owners of a layer violate the
 * property when they serve the same epoch, or when one of them has no membership in etcd at that
 * instant (its lease is gone: a new owner may have been planned). Owners of different epochs
 * that are both members are a plan hand-over, fenced by epoch; they are counted, not failed.
 */
export function ownerViolations(samples: readonly WorkerSample[], events: readonly EtcdEvent[], freshMs: number): { violations: string[]; handovers: number } {
  const out: string[] = [];
  let handovers = 0;
  const byWorker = new Map<string, WorkerSample[]>();
  for (const s of samples) byWorker.set(s.worker, [...(byWorker.get(s.worker) ?? []), s]);
  const instants = [...new Set(samples.map((s) => s.atMs))].sort((a, b) => a - b);
  for (const t of instants) {
    const owners: { worker: string; start: number; end: number; epoch: number }[] = [];
    for (const [worker, list] of byWorker) {
      let latest: WorkerSample | undefined;
      for (const s of list) if (s.atMs <= t && (latest === undefined || s.atMs > latest.atMs)) latest = s;
      const r = latest?.reply;
      if (latest === undefined || r === undefined || t - latest.atMs > freshMs || !r.serving || !r.hasRange) continue;
      owners.push({ worker, start: r.layerStart, end: r.layerEnd, epoch: r.planEpoch });
    }
    for (let i = 0; i < owners.length; i++) {
      for (let j = i + 1; j < owners.length; j++) {
        const a = owners[i];
        const b = owners[j];
        if (a.start >= b.end || b.start >= a.end) continue;
        const aMember = isMemberAt(events, a.worker, t);
        const bMember = isMemberAt(events, b.worker, t);
        if (a.epoch === b.epoch || !aMember || !bMember) {
          out.push(
            `${(t / 1000).toFixed(3)} s: ${a.worker}[${a.start},${a.end})@${a.epoch}${aMember ? '' : ' (no lease)'} and ${b.worker}[${b.start},${b.end})@${b.epoch}${bMember ? '' : ' (no lease)'} both serving`,
          );
        } else {
          handovers += 1;
        }
      }
    }
  }
  return { violations: capped(out), handovers };
}

/** Replies from two coordinators that both said "serving" with overlapping [sent, received] intervals. */
export function dualLeaderViolations(statuses: readonly StatusSample[]): string[] {
  const serving = statuses.filter((s) => s.status?.serving === true);
  const out: string[] = [];
  for (let i = 0; i < serving.length; i++) {
    for (let j = i + 1; j < serving.length; j++) {
      const a = serving[i];
      const b = serving[j];
      if (a.coordinator !== b.coordinator && a.sentAtMs <= b.atMs && b.sentAtMs <= a.atMs) {
        out.push(`${(a.atMs / 1000).toFixed(3)} s: ${a.coordinator} (epoch ${a.status!.planEpoch}) and ${b.coordinator} (epoch ${b.status!.planEpoch}) both serving`);
      }
    }
  }
  return capped(out);
}
