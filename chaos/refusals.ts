/**
 * How S11 and S12 judge refusals, as pure functions over what was recorded.
 *
 * A rogue's attempt is refused in one of two places. At the TLS handshake: a node port (a worker's
 * Worker service, etcd) requires a certificate from the cluster CA, so a caller with none, or with
 * one from another CA, never reaches a handler; the client sees the connection fail (gRPC
 * UNAVAILABLE) and nothing can be audited by Bora (etcd logs a rejected connection). Or in a
 * handler: the coordinator's port takes TLS without a client certificate (API keys identify
 * clients), and a cluster-CA certificate of the wrong role passes any handshake; those refusals are
 * UNAUTHENTICATED or PERMISSION_DENIED and each writes an audit line (`what` = the method).
 */
import type { ErrorCode } from '../common/errors';
import type { RequestRecord } from './workload';

/** Where an attempt must be refused: at the handshake, or by a handler with this status. */
export type ExpectedRefusal = 'handshake' | 'UNAUTHENTICATED' | 'PERMISSION_DENIED';

/** How an attempt ended: `refused` false when it got what it asked for (or anything but an error). */
export interface AttemptOutcome {
  readonly refused: boolean;
  /** A gRPC status name (UNAVAILABLE, PERMISSION_DENIED, ...), or OK when it was not refused. */
  readonly code: string;
  readonly message: string;
}

export interface RogueAttempt {
  /** What was tried, e.g. "Forward to stage 0 (w1)". */
  readonly action: string;
  /** The node it was aimed at. */
  readonly node: string;
  /** What the rogue presented, e.g. "no certificate", "foreign-CA certificate", "client key". */
  readonly credential: string;
  readonly expected: ExpectedRefusal;
  /** The audit `what` a handler refusal writes on `node` (undefined: nothing audits it, e.g. etcd). */
  readonly audit?: string;
  readonly outcome: AttemptOutcome;
}

/** A handshake refusal shows as UNAVAILABLE (grpc-js, etcd3's connect failure). */
function matches(expected: ExpectedRefusal, code: string): boolean {
  return expected === 'handshake' ? code === 'UNAVAILABLE' : code === expected;
}

/** Attempts that were not refused, or refused otherwise than expected. */
export function attemptViolations(attempts: readonly RogueAttempt[]): string[] {
  return attempts.flatMap((a) => {
    if (!a.outcome.refused) return [`${a.action} with ${a.credential} was NOT refused (${a.outcome.code}: ${a.outcome.message})`];
    if (!matches(a.expected, a.outcome.code)) return [`${a.action} with ${a.credential}: refused with ${a.outcome.code}, expected ${a.expected} (${a.outcome.message})`];
    return [];
  });
}

/** One line per attempt for the report: "action [credential] -> CODE: message". */
export function describeAttempt(a: RogueAttempt): string {
  return `${a.action} [${a.credential}] -> ${a.outcome.refused ? '' : 'NOT REFUSED '}${a.outcome.code}: ${a.outcome.message.slice(0, 160)}`;
}

/** Counts of `outcome: refused` audit lines by `what`, from a node's audit log (JSON lines; others skipped). */
export function auditRefusals(text: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    let record: { what?: unknown; outcome?: unknown };
    try {
      record = JSON.parse(line) as { what?: unknown; outcome?: unknown };
    } catch {
      continue;
    }
    if (record.outcome !== 'refused' || typeof record.what !== 'string') continue;
    counts.set(record.what, (counts.get(record.what) ?? 0) + 1);
  }
  return counts;
}

/**
 * Handler refusals without their audit lines: per node and `what`, the audit log must hold at
 * least as many refused lines as attempts that a handler refused there.
 */
export function missingAuditLines(attempts: readonly RogueAttempt[], refusalsByNode: ReadonlyMap<string, ReadonlyMap<string, number>>): string[] {
  const wanted = new Map<string, number>();
  for (const a of attempts) {
    if (a.audit === undefined || a.expected === 'handshake') continue;
    const key = `${a.node}\u0000${a.audit}`;
    wanted.set(key, (wanted.get(key) ?? 0) + 1);
  }
  const out: string[] = [];
  for (const [key, count] of wanted) {
    const [node, what] = key.split('\u0000');
    const have = refusalsByNode.get(node)?.get(what) ?? 0;
    if (have < count) out.push(`${node}: ${have} refused ${what} audit line(s), ${count} handler refusal(s) made`);
  }
  return out;
}

/** What S12 accepts from a request that did not complete. */
export function allowedOverloadCodes(oversized: boolean): readonly ErrorCode[] {
  // An oversized prompt is refused by the coordinator's message limit (RESOURCE_EXHAUSTED, from
  // the length prefix); one within that limit but over the prompt limit gets INVALID_ARGUMENT
  // from the byte check, before any tokenizing.
  return oversized ? ['RESOURCE_EXHAUSTED', 'INVALID_ARGUMENT'] : ['RESOURCE_EXHAUSTED'];
}

/**
 * Requests of an overload run that ended otherwise than completing or being refused as allowed
 * (allowedOverloadCodes), or that were refused after tokens came (a refusal must come first).
 */
export function overloadViolations(records: readonly RequestRecord[]): string[] {
  const out: string[] = [];
  for (const r of records) {
    if (r.completed !== undefined) continue;
    const last = r.attempts.at(-1);
    const oversized = r.spec.promptText !== undefined;
    if (last?.error === undefined) {
      out.push(`lane ${r.lane} #${r.iteration}: no attempt ended`);
      continue;
    }
    if (!allowedOverloadCodes(oversized).includes(last.error.code)) out.push(`lane ${r.lane} #${r.iteration}${oversized ? ' (oversized prompt)' : ''}: ${last.error.code}: ${last.error.message.slice(0, 160)}`);
    else if (last.tokens.length > 0) out.push(`lane ${r.lane} #${r.iteration}: ${last.error.code} after ${last.tokens.length} tokens (an admitted stream broke)`);
  }
  return out;
}

/** How many requests ended with each error code ("completed" for those that completed). */
export function outcomeCounts(records: readonly RequestRecord[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const r of records) {
    const key = r.completed !== undefined ? 'completed' : (r.attempts.at(-1)?.error?.code ?? 'none');
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}
