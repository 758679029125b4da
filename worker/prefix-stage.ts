/**
 * A StageEngine with a prefix cache (prefix-cache.ts) around it, on the engine thread. Only the
 * engine's public cache API is used: snapshotCaches to copy a finished block out, restoreCache to
 * install cached blocks into a sequence (as a hand-over moves a cache between workers).
 *
 * The protocol between stages:
 * - The first stage looks up each slice whose sequence sits at a block boundary (a new sequence,
 *   a replay from 0, or a prompt chunk that continues one): the longest run of cached blocks at the
 *   start of the slice's tokens, always leaving at least one token to compute (its logits are the
 *   slice's). It installs them and computes the rest; the slice goes on as
 *   `{ startPosition: from + cached, tokenCount: rest, prefix: { key, tokens: cached } }`.
 * - A later stage installs the same blocks from its own store, walking the chain back from
 *   `prefix.key` (each block names its parent). Every stage captures the blocks its sequences
 *   complete, from the same frames in the same order, so they hold the same blocks; evictions are
 *   decided by the first stage alone (its `--prefix-cache-bytes` budget) and travel on with the
 *   frame (`evicted`), so a later stage never drops a block the first stage may still hand out.
 *   A later stage that lacks a block anyway (a frame lost between stages) fails the micro-batch
 *   with FAILED_PRECONDITION: the coordinator breaks the pipeline and replays on a new plan
 *   epoch, under which every store starts empty. Outputs are never computed from missing KV.
 * - Every block belongs to one plan epoch: a frame of another epoch empties the store first.
 *   A reload is a new PrefixStage, so blocks never outlive the weights that computed them.
 *
 * Sliding window: a sequence's cache keeps only the last window - 1 positions, so a block can be
 * copied out only while every position it needs is still there. A slice longer than that is
 * computed in rounds ending at multiples of the largest block multiple within window - 1; the
 * engine is shape-invariant, so the rounds give the same bits as one call.
 */
import type { CacheSnapshot } from '../common/engine/kv-cache';
import type { SliceInput, StageEngine, StageInput, StageOutput } from '../common/engine/stage-engine';
import { sumNormedRows } from '../common/engine/pooling';
import { FailedPreconditionError, InvalidArgumentError } from '../common/errors';
import type { SequenceId } from '../common/ids';
import { PREFIX_BLOCK_TOKENS as B, PrefixStore, chainKey, rootKey, type PrefixBlock, type PrefixCacheStats } from './prefix-cache';

/** What a forward needs beyond its input: the frame's plan epoch and the first stage's evictions. */
export interface ForwardContext {
  readonly planEpoch: number;
  /** Block keys the first stage evicted (later stages drop them after this call). */
  readonly evicted?: readonly string[];
  /** An embedding micro-batch: no cached prefix is skipped (every token's state is pooled). */
  readonly embed?: boolean;
}

export interface StageResult extends StageOutput {
  /** The slices as computed (fewer tokens where cached blocks were installed), in input order. */
  readonly slices?: readonly SliceInput[];
  /** First stage: block keys it evicted during this call, for the later stages. */
  readonly evicted?: readonly string[];
  /** Last stage of an embedding micro-batch: per slice, the sum of its final-normed hidden states, (slices, H). */
  readonly pooled?: Float32Array;
}

/** The model's final RMSNorm, which the last stage applies to the states it pools. */
export interface FinalNorm {
  readonly weight: Float32Array;
  readonly eps: number;
}

/** Where a sequence's block chain stands: the key of its last full block and the tokens since. */
interface Chain {
  key: string;
  /** Position of pending[0] (a multiple of B). */
  blockStart: number;
  pending: number[];
}

/** One contiguous run of cached positions, (K, length, D) per layer. */
interface Piece {
  readonly positions: Int32Array;
  readonly layers: readonly { readonly k: Float32Array; readonly v: Float32Array }[];
}

export class PrefixStage {
  private readonly store: PrefixStore | undefined;
  private readonly chains = new Map<SequenceId, Chain>();
  private epoch: number | undefined;
  private readonly root: string;
  private readonly keepSlots: number;
  /** Sliding window: a slice is computed in rounds ending at multiples of this. */
  private readonly roundTokens: number;

  constructor(
    readonly engine: StageEngine,
    /** The first stage's budget; any positive value turns a later stage's store on. 0: off. */
    budgetBytes: number,
    /** Names the model (the plan's model id): the same on every stage. */
    modelTag: string,
    /** Last stage: the final norm, for embeddings. */
    private readonly finalNorm?: FinalNorm,
  ) {
    const c = engine.config;
    this.keepSlots = c.slidingWindow === null ? Infinity : c.slidingWindow - 1;
    this.roundTokens = this.keepSlots === Infinity ? Infinity : Math.floor(this.keepSlots / B) * B;
    const usable = budgetBytes > 0 && this.roundTokens >= B;
    this.store = usable ? new PrefixStore(engine.isFirst ? budgetBytes : Infinity) : undefined;
    this.root = rootKey(modelTag);
  }

  get enabled(): boolean {
    return this.store !== undefined;
  }

  stats(): PrefixCacheStats {
    return this.store?.stats() ?? { hitTokens: 0, missTokens: 0, blocks: 0, bytes: 0, evictedBlocks: 0 };
  }

  /** The sequences' caches were freed: forget where their chains stood. */
  forget(ids: readonly SequenceId[] | 'all'): void {
    if (ids === 'all') this.chains.clear();
    else for (const id of ids) this.chains.delete(id);
  }

  /** Keep the chains of `ids` only. */
  retainOnly(ids: readonly SequenceId[]): void {
    const kept = new Set(ids);
    for (const id of [...this.chains.keys()]) if (!kept.has(id)) this.chains.delete(id);
  }

  async forward(input: StageInput, context: ForwardContext): Promise<StageResult> {
    const output = await this.forwardCached(input, context);
    if (context.embed !== true || !this.engine.isLast) return output;
    if (this.finalNorm === undefined) throw new FailedPreconditionError('this stage was loaded without the final norm: it cannot pool embeddings');
    const slices = output.slices ?? input.slices;
    return { ...output, pooled: sumNormedRows(output.hidden, slices.map((s) => s.tokenCount), this.finalNorm.weight, this.finalNorm.eps) };
  }

  private async forwardCached(input: StageInput, context: ForwardContext): Promise<StageResult> {
    const store = this.store;
    if (store === undefined) return this.engine.forward(input);
    if (context.planEpoch !== this.epoch) {
      store.clear();
      this.chains.clear();
      this.epoch = context.planEpoch;
    }
    // An embedding pools every token's state, so nothing is skipped (blocks are still kept).
    const slices = context.embed === true ? input.slices : input.slices.map((s) => (this.engine.isFirst ? this.lookUp(store, s) : this.install(store, s)));
    // Hidden rows come only for the computed tokens: the first stage embeds token ids, and what
    // it passes on already leaves the cached positions out.
    const output = await this.computeInRounds(slices, input.hidden);
    if (this.engine.isFirst) return { ...output, slices, evicted: store.takeEvicted() };
    if (context.evicted !== undefined) store.evict(context.evicted);
    return { ...output, slices };
  }

  /** First stage: installs the cached blocks at the start of the slice; returns what is left. */
  private lookUp(store: PrefixStore, s: SliceInput): SliceInput {
    const chain = this.chainBefore(s);
    if (chain === undefined || chain.pending.length > 0 || s.tokenIds === undefined || s.tokenIds.length !== s.tokenCount) return s;
    const lookable = Math.floor((s.tokenCount - 1) / B);
    const blocks: PrefixBlock[] = [];
    let key = chain.key;
    while (blocks.length < lookable) {
      const next = chainKey(key, s.tokenIds.slice(blocks.length * B, (blocks.length + 1) * B));
      const block = store.use(next);
      if (block === undefined) break;
      blocks.push(block);
      key = next;
    }
    const cached = blocks.length * B;
    store.hitTokens += cached;
    store.missTokens += (lookable - blocks.length) * B;
    if (cached === 0) return s;
    this.installBlocks(s.id, s.startPosition, blocks);
    this.chains.set(s.id, { key, blockStart: s.startPosition + cached, pending: [] });
    return { id: s.id, startPosition: s.startPosition + cached, tokenCount: s.tokenCount - cached, tokenIds: s.tokenIds.slice(cached), prefix: { key, tokens: cached } };
  }

  /** Later stage: installs the blocks the first stage installed for this slice. */
  private install(store: PrefixStore, s: SliceInput): SliceInput {
    if (s.prefix === undefined) return s;
    const { key, tokens } = s.prefix;
    const from = s.startPosition - tokens;
    if (tokens <= 0 || tokens % B !== 0 || from < 0) {
      throw new InvalidArgumentError(`sequence ${s.id}: a cached prefix of ${tokens} tokens before position ${s.startPosition} is not whole blocks`);
    }
    const blocks: PrefixBlock[] = [];
    let next = key;
    for (let i = 0; i < tokens / B; i++) {
      const block = store.use(next);
      if (block === undefined) {
        store.missTokens += tokens;
        throw new FailedPreconditionError(`sequence ${s.id}: prefix block ${next} (of positions ${from} to ${s.startPosition}) is not in this stage's prefix cache`);
      }
      blocks.unshift(block);
      next = block.parent;
    }
    if (blocks[0].start !== from) throw new FailedPreconditionError(`sequence ${s.id}: cached prefix starts at ${blocks[0].start}, expected ${from}`);
    store.hitTokens += tokens;
    this.installBlocks(s.id, from, blocks);
    this.chains.set(s.id, { key, blockStart: s.startPosition, pending: [] });
    return s;
  }

  /** The sequence's chain before slice `s`, if it is known and in step with the slice. */
  private chainBefore(s: SliceInput): Chain | undefined {
    if (s.startPosition === 0) {
      const chain = { key: this.root, blockStart: 0, pending: [] };
      this.chains.set(s.id, chain);
      return chain;
    }
    const chain = this.chains.get(s.id);
    if (chain !== undefined && chain.blockStart + chain.pending.length === s.startPosition) return chain;
    this.chains.delete(s.id);
    return undefined;
  }

  /** Puts blocks (consecutive, the first at position `from`) after the sequence's cache up to `from`. */
  private installBlocks(id: SequenceId, from: number, blocks: readonly PrefixBlock[]): void {
    const pieces: Piece[] = [];
    if (from > 0) {
      const current = this.engine.snapshotCaches([id], this.engine.range).get(id);
      if (current === undefined || current.nextPosition !== from) {
        throw new FailedPreconditionError(`sequence ${id}: cached blocks from position ${from} do not continue this stage's cache (at ${current?.nextPosition ?? 'none'})`);
      }
      pieces.push(current);
    }
    for (const b of blocks) pieces.push({ positions: Int32Array.from({ length: B }, (_, i) => b.start + i), layers: b.layers });
    const snapshot = joinPieces(pieces, this.keepSlots, from + blocks.length * B, this.engine.config.numKvHeads, this.engine.config.headDim);
    this.engine.release(id);
    this.engine.restoreCache(id, this.engine.range.start, snapshot);
  }

  /**
   * Runs the slices, in rounds when a sliding window would drop positions of a block before it is
   * complete, and copies out every block a slice completes.
   */
  private async computeInRounds(slices: readonly SliceInput[], hidden: Float32Array | undefined): Promise<StageOutput> {
    const rounds = planRounds(slices, this.roundTokens);
    if (rounds.length === 1) {
      const output = await this.engine.forward({ slices, hidden });
      this.capture(slices);
      return output;
    }
    const H = this.engine.config.hiddenSize;
    const V = this.engine.config.vocabSize;
    const sliceOffsets: number[] = [];
    slices.reduce((offset, s, i) => ((sliceOffsets[i] = offset), offset + s.tokenCount), 0);
    const outHidden = new Float32Array(slices.reduce((n, s) => n + s.tokenCount, 0) * H);
    let logits: Float32Array | undefined;
    for (const round of rounds) {
      const parts = round.map((c) => ({ ...c, input: chunkOf(slices[c.slice], c.offset, c.count) }));
      const roundHidden = hidden === undefined ? undefined : gatherRows(hidden, H, parts.map((p) => [sliceOffsets[p.slice] + p.offset, p.count]));
      const out = await this.engine.forward({ slices: parts.map((p) => p.input), hidden: roundHidden });
      this.capture(parts.map((p) => p.input));
      let row = 0;
      parts.forEach((p, i) => {
        outHidden.set(out.hidden.subarray(row * H, (row + p.count) * H), (sliceOffsets[p.slice] + p.offset) * H);
        row += p.count;
        if (out.logits !== undefined && p.offset + p.count === slices[p.slice].tokenCount) {
          logits ??= new Float32Array(slices.length * V);
          logits.set(out.logits.subarray(i * V, (i + 1) * V), p.slice * V);
        }
      });
    }
    return logits === undefined ? { hidden: outHidden } : { hidden: outHidden, logits };
  }

  /** After a call: extends each computed slice's chain and stores the blocks it completed. */
  private capture(slices: readonly SliceInput[]): void {
    const store = this.store!;
    for (const s of slices) {
      const chain = this.chainBefore(s);
      if (chain === undefined) continue;
      if (s.tokenIds === undefined || s.tokenIds.length !== s.tokenCount) {
        this.chains.delete(s.id);
        continue;
      }
      chain.pending.push(...s.tokenIds);
      let snapshot: CacheSnapshot | undefined;
      while (chain.pending.length >= B) {
        const key = chainKey(chain.key, chain.pending.slice(0, B));
        if (!store.has(key)) {
          snapshot ??= this.engine.snapshotCaches([s.id], this.engine.range).get(s.id);
          const block = snapshot === undefined ? undefined : cutBlock(snapshot, chain.blockStart, key, chain.key, this.engine.config.numKvHeads, this.engine.config.headDim);
          if (block !== undefined) store.insert(block);
        } else store.use(key);
        chain.key = key;
        chain.blockStart += B;
        chain.pending.splice(0, B);
      }
    }
  }
}

/** Rounds of (slice index, token offset, count): one round unless a slice crosses a multiple of roundTokens. */
export function planRounds(slices: readonly SliceInput[], roundTokens: number): { slice: number; offset: number; count: number }[][] {
  const perSlice = slices.map((s) => {
    const cuts: { offset: number; count: number }[] = [];
    let offset = 0;
    while (offset < s.tokenCount) {
      const position = s.startPosition + offset;
      const nextCut = roundTokens === Infinity ? Infinity : (Math.floor(position / roundTokens) + 1) * roundTokens;
      const count = Math.min(s.tokenCount - offset, nextCut - position);
      cuts.push({ offset, count });
      offset += count;
    }
    return cuts;
  });
  const rounds: { slice: number; offset: number; count: number }[][] = [];
  const most = Math.max(...perSlice.map((c) => c.length));
  for (let r = 0; r < most; r++) {
    rounds.push(perSlice.flatMap((cuts, slice) => (r < cuts.length ? [{ slice, ...cuts[r] }] : [])));
  }
  return rounds;
}

function chunkOf(s: SliceInput, offset: number, count: number): SliceInput {
  if (offset === 0 && count === s.tokenCount) return s;
  return { id: s.id, startPosition: s.startPosition + offset, tokenCount: count, tokenIds: s.tokenIds?.slice(offset, offset + count) };
}

function gatherRows(packed: Float32Array, width: number, ranges: readonly (readonly [number, number])[]): Float32Array {
  const out = new Float32Array(ranges.reduce((n, [, count]) => n + count, 0) * width);
  let row = 0;
  for (const [start, count] of ranges) {
    out.set(packed.subarray(start * width, (start + count) * width), row * width);
    row += count;
  }
  return out;
}

/** The block of positions [start, start + B) out of a sequence's cache, if they are all still there. */
function cutBlock(snapshot: CacheSnapshot, start: number, key: string, parent: string, kvHeads: number, headDim: number): PrefixBlock | undefined {
  const length = snapshot.positions.length;
  const index = length === 0 ? -1 : start - snapshot.positions[0];
  if (index < 0 || index + B > length || snapshot.positions[index] !== start || snapshot.positions[index + B - 1] !== start + B - 1) return undefined;
  const rows = (data: Float32Array): Float32Array => {
    const out = new Float32Array(kvHeads * B * headDim);
    for (let h = 0; h < kvHeads; h++) out.set(data.subarray((h * length + index) * headDim, (h * length + index + B) * headDim), h * B * headDim);
    return out;
  };
  return { key, parent, start, layers: snapshot.layers.map(({ k, v }) => ({ k: rows(k), v: rows(v) })) };
}

/**
 * Concatenates runs of positions into one snapshot ending at `nextPosition`, keeping the last
 * `keepSlots` positions (what the sequence's own cache would hold there).
 */
function joinPieces(pieces: readonly Piece[], keepSlots: number, nextPosition: number, kvHeads: number, headDim: number): CacheSnapshot {
  const total = pieces.reduce((n, p) => n + p.positions.length, 0);
  const kept = Math.min(total, keepSlots);
  const skip = total - kept;
  const positions = new Int32Array(kept);
  const layerCount = pieces[0].layers.length;
  const layers = Array.from({ length: layerCount }, () => ({ k: new Float32Array(kvHeads * kept * headDim), v: new Float32Array(kvHeads * kept * headDim) }));
  let at = -skip; // destination index of the piece's first position
  for (const p of pieces) {
    const n = p.positions.length;
    const lo = Math.max(0, -at); // first source position kept
    for (let i = lo; i < n; i++) positions[at + i] = p.positions[i];
    for (let l = 0; l < layerCount; l++) {
      for (let h = 0; h < kvHeads; h++) {
        const src = (h * n + lo) * headDim;
        const dst = (h * kept + at + lo) * headDim;
        layers[l].k.set(p.layers[l].k.subarray(src, (h * n + n) * headDim), dst);
        layers[l].v.set(p.layers[l].v.subarray(src, (h * n + n) * headDim), dst);
      }
    }
    at += n;
  }
  return { nextPosition, positions, layers };
}
