/**
 * A stage: decoder layers [start, end) of a model, with the embedding when start = 0 and the final
 * norm + LM head when end = numLayers. One process running [0, L) is the whole model; a pipeline
 * is several stages handing the hidden state on. The stage keeps a KV cache per sequence.
 *
 * forward() reads top to bottom: tokens -> embedding -> layer start ... layer end-1 -> head.
 */
import { FailedPreconditionError, InvalidArgumentError } from '../errors';
import type { LayerRange, SequenceId } from '../ids';
import type { WeightSource } from '../model/weight-source';
import type { ModelConfig } from '../model/config';
import { embeddingSpec } from '../model/weights';
import { buildAttentionBatch, inverseFrequencies, type AttentionBatch } from './attention-batch';
import { EmbeddingTable } from './embedding';
import { LocalExperts, type ExpertBackend } from './experts';
import { SequenceCache, type CacheSnapshot } from './kv-cache';
import { defaultComputeSettings, type ComputeSettings } from './compute-settings';
import { createStageCompute } from './create-stage-compute';
import type { HeadCompute, LayerCompute, LayerResult, StageCompute } from './layer-compute';
import { accumulateExperts, gatherRows, groupByExpert, routeTokens, type TokenRoute } from './moe-routing';

/** This call's part of one sequence. */
export interface SliceInput {
  readonly id: SequenceId;
  /** Position of the first new token. 0 restarts the sequence (a replay); otherwise it must continue the cache. */
  readonly startPosition: number;
  readonly tokenCount: number;
  /** Token ids, required by the first stage only (later stages use them for their prefix caches). */
  readonly tokenIds?: readonly number[];
  /**
   * Set when the `tokens` positions before startPosition came from the prefix cache of the first
   * stage (worker/prefix-stage.ts): `key` names that prefix; the engine itself ignores it.
   */
  readonly prefix?: { readonly key: string; readonly tokens: number };
}

export interface StageInput {
  readonly slices: readonly SliceInput[];
  /** Hidden states entering the stage, packed (sum of tokenCount, H); absent for the first stage. */
  readonly hidden?: Float32Array;
}

export interface StageOutput {
  /** Hidden states leaving the last layer of the stage, packed (sum of tokenCount, H). */
  readonly hidden: Float32Array;
  /** Last stage only: logits of each slice's last token, (slices, V). */
  readonly logits?: Float32Array;
}

export interface StageOptions {
  readonly compute?: ComputeSettings;
  /**
   * MoE models: where experts run. Default: all experts of the stage's layers, loaded here.
   * A custom backend lets the cluster run them on other workers.
   */
  readonly experts?: ExpertBackend;
  /** Called with each MoE layer's routing decisions (for metrics and tests). */
  readonly onRoute?: (layer: number, routes: readonly TokenRoute[]) => void;
}

export class StageEngine {
  private readonly caches = new Map<SequenceId, SequenceCache>();
  private readonly invFreq: Float32Array;

  private constructor(
    readonly config: ModelConfig,
    readonly range: LayerRange,
    private readonly compute: StageCompute,
    private readonly embedding: EmbeddingTable | undefined,
    private readonly layers: readonly LayerCompute[],
    private readonly head: HeadCompute | undefined,
    private readonly experts: ExpertBackend | undefined,
    private readonly ownedExperts: LocalExperts | undefined,
    private readonly onRoute: StageOptions['onRoute'],
  ) {
    this.invFreq = inverseFrequencies(config);
  }

  static async load(ckpt: WeightSource, range: LayerRange, options: StageOptions = {}): Promise<StageEngine> {
    const c = ckpt.config;
    if (!Number.isInteger(range.start) || !Number.isInteger(range.end) || range.start < 0 || range.end > c.numLayers || range.start >= range.end) {
      throw new InvalidArgumentError(`layer range [${range.start}, ${range.end}) is not inside [0, ${c.numLayers})`);
    }
    const settings = options.compute ?? defaultComputeSettings();
    const embeddingTensor = embeddingSpec(c);
    const embedding = range.start === 0 ? new EmbeddingTable(await ckpt.readRaw(embeddingTensor.name, embeddingTensor.shape), c.vocabSize, c.hiddenSize) : undefined;

    const layerIds = Array.from({ length: range.end - range.start }, (_, i) => range.start + i);
    const compute = createStageCompute(settings);
    const layers: LayerCompute[] = [];
    for (const layer of layerIds) layers.push(await compute.layer(ckpt, layer));

    let ownedExperts: LocalExperts | undefined;
    if (c.numExperts > 0 && options.experts === undefined) {
      const all = Array.from({ length: c.numExperts }, (_, e) => e);
      ownedExperts = await LocalExperts.load(ckpt, layerIds, () => all, settings);
    }

    const head = range.end === c.numLayers ? await compute.head(ckpt) : undefined;
    return new StageEngine(c, range, compute, embedding, layers, head, options.experts ?? ownedExperts, ownedExperts, options.onRoute);
  }

  get isFirst(): boolean {
    return this.range.start === 0;
  }

  get isLast(): boolean {
    return this.range.end === this.config.numLayers;
  }

  /** Position the next token of a sequence must have, or undefined for an unknown sequence. */
  nextPosition(id: SequenceId): number | undefined {
    return this.caches.get(id)?.nextPosition;
  }

  get sequenceCount(): number {
    return this.caches.size;
  }

  get kvCacheBytes(): number {
    let bytes = 0;
    for (const cache of this.caches.values()) bytes += cache.bytes;
    return bytes;
  }

  /** Frees every sequence's KV cache; returns how many there were. */
  releaseAll(): number {
    const count = this.caches.size;
    this.caches.clear();
    return count;
  }

  /** Frees a sequence's KV cache; false if it was not here. */
  release(id: SequenceId): boolean {
    return this.caches.delete(id);
  }

  /**
   * One throw-away token through every layer (and the head): first runs allocate (onnxruntime
   * its buffers on a session's first run), which would otherwise land on the first real step
   * after a re-plan.
   */
  async warmUp(): Promise<void> {
    const id = '__warm-up__' as SequenceId;
    const tokenIds = this.isFirst ? [1] : undefined;
    await this.forward({ slices: [{ id, startPosition: 0, tokenCount: 1, tokenIds }], hidden: this.isFirst ? undefined : new Float32Array(this.config.hiddenSize) });
    this.caches.delete(id);
  }

  /** Frees every cache but those of `keep`; returns how many were freed. */
  retainOnly(keep: readonly SequenceId[]): number {
    const kept = new Set(keep);
    let freed = 0;
    for (const id of [...this.caches.keys()]) if (!kept.has(id) && this.caches.delete(id)) freed++;
    return freed;
  }

  /** Copies of the caches of `ids` for absolute layers `layers` (inside this stage); absent ids are skipped. */
  snapshotCaches(ids: readonly SequenceId[], layers: LayerRange): Map<SequenceId, CacheSnapshot> {
    if (layers.start < this.range.start || layers.end > this.range.end || layers.start >= layers.end) {
      throw new InvalidArgumentError(`layers [${layers.start}, ${layers.end}) are not inside this stage's [${this.range.start}, ${this.range.end})`);
    }
    const out = new Map<SequenceId, CacheSnapshot>();
    for (const id of ids) {
      const cache = this.caches.get(id);
      if (cache !== undefined) out.set(id, cache.snapshot(layers.start - this.range.start, layers.end - this.range.start));
    }
    return out;
  }

  /** Installs a snapshot of absolute layers starting at `layerStart` for `id` (a hand-over). */
  restoreCache(id: SequenceId, layerStart: number, snap: CacheSnapshot): void {
    let cache = this.caches.get(id);
    if (cache === undefined) {
      cache = this.newCache();
      this.caches.set(id, cache);
    }
    if (!cache.restore(layerStart - this.range.start, snap)) {
      throw new FailedPreconditionError(`sequence ${id}: a cache snapshot of layers from ${layerStart} (${snap.layers.length} layers, next position ${snap.nextPosition}) does not fit this stage's cache`);
    }
  }

  async forward(input: StageInput): Promise<StageOutput> {
    const c = this.config;
    const H = c.hiddenSize;
    const totalTokens = this.validate(input);

    // tokens -> hidden (N, H)
    const packed = this.isFirst ? this.embedding!.lookup(input.slices.flatMap((s) => s.tokenIds!)) : input.hidden!;
    if (packed.length !== totalTokens * H) {
      throw new InvalidArgumentError(`hidden state has ${packed.length} values, expected ${totalTokens} tokens x ${H}`);
    }
    const caches = input.slices.map((s) => this.cacheFor(s));
    const batch = buildAttentionBatch(c, this.invFreq, input.slices.map((s, b) => ({ cache: caches[b], tokenCount: s.tokenCount })));

    // layers: hidden (B, T, H) through [start, end). Each layer writes its new keys and values
    // into the room reserved after each cache's valid slots (the native attention does it in
    // place); they are committed only once every layer succeeded, so a failed call leaves the
    // caches as they were.
    input.slices.forEach((s, b) => caches[b].reserve(s.tokenCount));
    let hidden = pad(packed, input.slices, batch.paddedTokens, H);
    for (let i = 0; i < this.layers.length; i++) {
      const out = await this.runLayer(i, hidden, batch, input.slices);
      hidden = out.hidden;
      if (out.k !== undefined && out.v !== undefined) {
        const { k, v } = out;
        caches.forEach((cache, b) => cache.writeNew(i, k, v, b, batch.paddedTokens, input.slices[b].tokenCount));
      }
    }
    caches.forEach((cache, b) => cache.commit(input.slices[b].tokenCount));
    const outHidden = unpad(hidden, input.slices, batch.paddedTokens, H);
    if (!this.isLast) return { hidden: outHidden };

    // head: last token of each slice -> logits (B, V)
    const last = new Float32Array(input.slices.length * H);
    let offset = 0;
    input.slices.forEach((s, b) => {
      offset += s.tokenCount;
      last.set(outHidden.subarray((offset - 1) * H, offset * H), b * H);
    });
    return { hidden: outHidden, logits: await this.head!.logits(last, input.slices.length) };
  }

  private validate(input: StageInput): number {
    if (input.slices.length === 0) throw new InvalidArgumentError('a forward call needs at least one sequence');
    const seen = new Set<SequenceId>();
    let total = 0;
    for (const s of input.slices) {
      if (seen.has(s.id)) throw new InvalidArgumentError(`sequence ${s.id} appears twice in one batch`);
      seen.add(s.id);
      if (!Number.isInteger(s.tokenCount) || s.tokenCount <= 0) throw new InvalidArgumentError(`sequence ${s.id}: tokenCount must be a positive integer`);
      if (this.isFirst && s.tokenIds?.length !== s.tokenCount) {
        throw new InvalidArgumentError(`sequence ${s.id}: the first stage needs ${s.tokenCount} token ids, got ${s.tokenIds?.length ?? 0}`);
      }
      const expected = this.caches.get(s.id)?.nextPosition ?? 0;
      if (s.startPosition !== 0 && s.startPosition !== expected) {
        throw new FailedPreconditionError(`sequence ${s.id}: got position ${s.startPosition}, this stage expects ${expected}`);
      }
      if (s.startPosition + s.tokenCount > this.config.maxPositionEmbeddings) {
        throw new InvalidArgumentError(`sequence ${s.id}: position ${s.startPosition + s.tokenCount} exceeds the model's ${this.config.maxPositionEmbeddings}`);
      }
      total += s.tokenCount;
    }
    if (!this.isFirst && input.hidden === undefined) throw new InvalidArgumentError('a stage after the first needs hidden states');
    return total;
  }

  /** The cache for a slice; startPosition 0 starts the sequence afresh. */
  private cacheFor(s: SliceInput): SequenceCache {
    let cache = this.caches.get(s.id);
    if (cache === undefined || s.startPosition === 0) {
      cache = this.newCache();
      this.caches.set(s.id, cache);
    }
    return cache;
  }

  private newCache(): SequenceCache {
    const c = this.config;
    const keep = c.slidingWindow === null ? Infinity : c.slidingWindow - 1;
    return new SequenceCache(this.layers.length, c.numKvHeads, c.headDim, keep);
  }

  private async runLayer(
    i: number,
    hidden: Float32Array, // (B, T, H)
    batch: AttentionBatch,
    slices: readonly SliceInput[],
  ): Promise<LayerResult> {
    const c = this.config;
    const T = batch.paddedTokens;
    const result = await this.layers[i].run({ hidden, batch, cacheLayer: i });
    if (this.layers[i].kind === 'dense') return result;

    // MoE: route the real (unpadded) tokens, run their experts, add the weighted outputs.
    const layer = this.range.start + i;
    const H = c.hiddenSize;
    const normed = unpad(result.normed!, slices, T, H); // (N, H)
    const logits = unpad(result.routerLogits!, slices, T, c.numExperts); // (N, E)
    const tokens = normed.length / H;
    const routes = routeTokens(logits, tokens, c.numExperts, c.expertsPerToken);
    this.onRoute?.(layer, routes);
    const groups = groupByExpert(routes, c.numExperts);
    const calls = groups.map((g) => ({ expert: g.expert, x: gatherRows(normed, H, g.tokens), tokens: g.tokens.length }));
    const outputs = await this.experts!.run(layer, calls);
    const moe = new Float32Array(tokens * H);
    accumulateExperts(moe, H, groups, outputs);
    const residual = unpad(result.hidden, slices, T, H);
    for (let j = 0; j < residual.length; j++) residual[j] = Math.fround(residual[j] + moe[j]);
    return { ...result, hidden: pad(residual, slices, T, H) };
  }

  async close(): Promise<void> {
    for (const layer of this.layers) await layer.close();
    await this.head?.close();
    await this.ownedExperts?.close();
    await this.compute.close();
    this.caches.clear();
  }
}

/** Packed (sum T_b, W) -> padded (B, T, W) with zero rows after each sequence's tokens. */
function pad(packed: Float32Array, slices: readonly SliceInput[], T: number, W: number): Float32Array {
  if (slices.every((s) => s.tokenCount === T)) return packed;
  const out = new Float32Array(slices.length * T * W);
  let offset = 0;
  slices.forEach((s, b) => {
    out.set(packed.subarray(offset * W, (offset + s.tokenCount) * W), b * T * W);
    offset += s.tokenCount;
  });
  return out;
}

/** Padded (B, T, W) -> packed (sum T_b, W). */
function unpad(padded: Float32Array, slices: readonly SliceInput[], T: number, W: number): Float32Array {
  if (slices.every((s) => s.tokenCount === T)) return padded;
  const total = slices.reduce((n, s) => n + s.tokenCount, 0);
  const out = new Float32Array(total * W);
  let offset = 0;
  slices.forEach((s, b) => {
    out.set(padded.subarray(b * T * W, (b * T + s.tokenCount) * W), offset * W);
    offset += s.tokenCount;
  });
  return out;
}
