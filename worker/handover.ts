/**
 * A planned hand-over, on the worker (see Plan.handover): after the coordinator commits the plan,
 * each stage this worker will serve gets the KV caches of the running sequences for its layers —
 * kept in place when this very engine served the same range before, otherwise copied from the
 * previous plan's primaries (itself or other workers, over FetchKv). Every sequence must end up at
 * the position the coordinator gave, or the migration fails and the coordinator replays instead.
 */
import type { Handover } from '../common/cluster/plan';
import { FailedPreconditionError } from '../common/errors';
import { sequenceId, type LayerRange, type SequenceId, type WorkerId } from '../common/ids';
import { INSECURE, type NodeSecurity } from '../common/security/node-security';
import type { SequencePosition } from '../common/wire/messages';
import type { SequenceSnapshot } from './engine-protocol';
import { fetchKv, type KvSources } from './kv-transfer';

/** Deadline of one FetchKv call. */
const FETCH_DEADLINE_MS = 30_000;

/** What a stage needs to take part in a hand-over (ThreadedStage implements it). */
export interface HandoverStage {
  readonly range: LayerRange;
  snapshotKv(ids: readonly SequenceId[], layers: LayerRange): Promise<SequenceSnapshot[]>;
  restoreKv(entries: readonly SequenceSnapshot[]): Promise<void>;
  retain(ids: readonly SequenceId[]): Promise<number>;
  positions(ids: readonly SequenceId[]): Promise<(number | undefined)[]>;
}

export interface HandoverContext {
  readonly self: WorkerId;
  readonly handover: Handover;
  /** The stages this worker served, per epoch. */
  readonly sources: KvSources;
  addressOf(worker: WorkerId): Promise<string>;
  readonly shape: { readonly kvHeads: number; readonly headDim: number };
  /** How other workers are dialed for FetchKv; plaintext when absent. */
  readonly security?: NodeSecurity;
}

/** Puts the caches of `sequences` in place on `stage`; throws when any ends up missing or elsewhere. */
export async function migrateStage(ctx: HandoverContext, stage: HandoverStage, sequences: readonly SequencePosition[]): Promise<void> {
  const ids = sequences.map((s) => sequenceId(s.sequenceId));
  const from = ctx.handover.fromEpoch;
  if (ctx.sources.served(from, stage)) {
    await stage.retain(ids); // the same engine served these layers: its caches are already right
  } else {
    await stage.retain([]);
    for (const old of ctx.handover.stages) {
      const layers = { start: Math.max(old.range.start, stage.range.start), end: Math.min(old.range.end, stage.range.end) };
      if (layers.start >= layers.end || ids.length === 0) continue;
      const entries = old.worker === ctx.self ? await ctx.sources.snapshot(from, layers, ids) : await fetchKv(await ctx.addressOf(old.worker), from, layers, ids, ctx.shape, FETCH_DEADLINE_MS, ctx.security ?? INSECURE);
      await stage.restoreKv(entries);
    }
  }
  const positions = await stage.positions(ids);
  const wrong = sequences.filter((s, i) => positions[i] !== s.nextPosition);
  if (wrong.length > 0) {
    const first = wrong[0];
    throw new FailedPreconditionError(
      `${wrong.length} sequence(s) not at their position on layers [${stage.range.start}, ${stage.range.end}), e.g. ${first.sequenceId}: ${positions[sequences.indexOf(first)] ?? 'no cache'} instead of ${first.nextPosition}`,
    );
  }
}
