/**
 * The sequences a stage holds KV caches for, by when a frame last touched them. The coordinator
 * releases a sequence when it ends; one that gets no frame for `idleLimitMs` was abandoned
 * instead (a forged frame's sequence, or a Release that never arrived) and its cache is freed. A
 * live sequence is never that idle: it gets a step every scheduler round, and one that waits out a
 * failover is replayed from position 0 on the new plan anyway, so freeing it costs nothing; were
 * it continued after all, the stage refuses the out-of-step position and the coordinator replays.
 */
import type { SequenceId } from '../common/ids';

/** Default for `bora worker --sequence-idle-ms`: generous against any decode gap or failover. */
export const DEFAULT_SEQUENCE_IDLE_MS = 120_000;

export class IdleSequences {
  private readonly lastSeenMs = new Map<SequenceId, number>();

  constructor(
    readonly idleLimitMs: number,
    private readonly nowMs: () => number = () => performance.now(),
  ) {}

  get size(): number {
    return this.lastSeenMs.size;
  }

  touch(ids: Iterable<SequenceId>): void {
    const now = this.nowMs();
    for (const id of ids) this.lastSeenMs.set(id, now);
  }

  /** The sequences idle for longer than the limit, no longer tracked. */
  takeIdle(): SequenceId[] {
    const cutoff = this.nowMs() - this.idleLimitMs;
    const idle: SequenceId[] = [];
    for (const [id, seenMs] of this.lastSeenMs) {
      if (seenMs < cutoff) {
        idle.push(id);
        this.lastSeenMs.delete(id);
      }
    }
    return idle;
  }
}
