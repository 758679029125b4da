/**
 * What a StageRunner computes with: layers [start, end) of a model. In a worker this is an
 * engine running on its own thread (ThreadedStage), so that the native kernels (or onnxruntime),
 * which compute on the calling thread, never block the event loop that renews the etcd lease and moves frames. In
 * tests it can be a StageEngine in this thread (InThreadStage).
 */
import type { StageEngine, StageInput } from '../common/engine/stage-engine';
import type { PrefixCacheStats } from './prefix-cache';
import { PrefixStage, type FinalNorm, type ForwardContext, type StageResult } from './prefix-stage';
import type { SequenceSnapshot } from './engine-protocol';
import { sequenceId, type LayerRange, type SequenceId } from '../common/ids';
import type { ModelConfig } from '../common/model/config';

export interface StageStats {
  readonly sequenceCount: number;
  readonly kvCacheBytes: number;
  /** The stage's prefix cache (prefix-stage.ts); absent when it has none. */
  readonly prefix?: PrefixCacheStats;
}

export interface StageBackend {
  readonly config: ModelConfig;
  readonly range: LayerRange;
  readonly isFirst: boolean;
  /** As of the last forward or release. */
  readonly stats: StageStats;
  /** `context`: the frame's epoch and the first stage's prefix evictions (no prefix cache without it). */
  forward(input: StageInput, context?: ForwardContext): Promise<StageResult>;
  /** Frees the sequences' caches; resolves to how many were held. */
  release(ids: readonly SequenceId[]): Promise<number>;
  /** Next position of each sequence, undefined where it holds none. */
  positions(ids: readonly SequenceId[]): Promise<(number | undefined)[]>;
  /** A planned hand-over: copies of some caches for absolute `layers`; installing copies; keeping only some. */
  snapshotKv(ids: readonly SequenceId[], layers: LayerRange): Promise<SequenceSnapshot[]>;
  restoreKv(entries: readonly SequenceSnapshot[]): Promise<void>;
  retain(ids: readonly SequenceId[]): Promise<number>;
  close(): Promise<void>;
}

export class InThreadStage implements StageBackend {
  private readonly prefix: PrefixStage;

  /** `prefixCacheBytes`: the prefix cache's budget (0: none); `modelTag` names the model; `finalNorm`: to pool embeddings (last stage). */
  constructor(
    private readonly engine: StageEngine,
    prefixCacheBytes = 0,
    modelTag = '',
    finalNorm?: FinalNorm,
  ) {
    this.prefix = new PrefixStage(engine, prefixCacheBytes, modelTag, finalNorm);
  }
  get config(): ModelConfig {
    return this.engine.config;
  }
  get range(): LayerRange {
    return this.engine.range;
  }
  get isFirst(): boolean {
    return this.engine.isFirst;
  }
  get stats(): StageStats {
    return { sequenceCount: this.engine.sequenceCount, kvCacheBytes: this.engine.kvCacheBytes, ...(this.prefix.enabled ? { prefix: this.prefix.stats() } : {}) };
  }
  forward(input: StageInput, context?: ForwardContext): Promise<StageResult> {
    return context === undefined ? this.engine.forward(input) : this.prefix.forward(input, context);
  }
  async release(ids: readonly SequenceId[]): Promise<number> {
    this.prefix.forget(ids);
    return ids.filter((id) => this.engine.release(id)).length;
  }
  async positions(ids: readonly SequenceId[]): Promise<(number | undefined)[]> {
    return ids.map((id) => this.engine.nextPosition(id));
  }
  async snapshotKv(ids: readonly SequenceId[], layers: LayerRange): Promise<SequenceSnapshot[]> {
    return [...this.engine.snapshotCaches(ids, layers)].map(([id, snapshot]) => ({ id, layerStart: layers.start, snapshot }));
  }
  async restoreKv(entries: readonly SequenceSnapshot[]): Promise<void> {
    for (const e of entries) this.engine.restoreCache(sequenceId(e.id), e.layerStart, e.snapshot);
  }
  async retain(ids: readonly SequenceId[]): Promise<number> {
    this.prefix.retainOnly(ids);
    return this.engine.retainOnly(ids);
  }
  close(): Promise<void> {
    return this.engine.close();
  }
}
