/**
 * The tensor work of a stage, behind one interface whatever runs it: Bora's native kernels for
 * every linear layer and attention (native-compute.ts, the default), or whole onnxruntime graphs
 * with the weights inside (onnx-compute.ts, the fallback where no C compiler built the kernels).
 * The stage engine around them (caches, batching, routing, experts) is the same for both;
 * create-stage-compute.ts picks one.
 */
import type { WeightSource } from '../model/weight-source';
import type { AttentionBatch } from './attention-batch';

/**
 * What one decoder layer takes in a forward call; shapes as in layer-graphs.ts. The batch's
 * caches have room reserved for the call's new tokens; `cacheLayer` is this layer's index in
 * them (its index within the stage).
 */
export interface LayerFeeds {
  readonly hidden: Float32Array; // (B, T, H)
  readonly batch: AttentionBatch;
  readonly cacheLayer: number;
}

export interface LayerResult {
  /** Dense layers: the layer's output. MoE layers: the residual stream after attention. */
  readonly hidden: Float32Array; // (B, T, H)
  /**
   * This step's keys after rotary embedding and values, (B, K, T, D) each, for the engine to
   * write into the caches; absent when the layer wrote them into the caches' storage itself.
   */
  readonly k?: Float32Array;
  readonly v?: Float32Array;
  /** MoE layers: post-attention RMSNorm of `hidden`, the experts' input. */
  readonly normed?: Float32Array; // (B, T, H)
  /** MoE layers: router logits. */
  readonly routerLogits?: Float32Array; // (B * T, E)
}

export interface LayerCompute {
  readonly kind: 'dense' | 'moe';
  run(feeds: LayerFeeds): Promise<LayerResult>;
  close(): Promise<void>;
}

/** Final norm and LM head: x (rows, H) -> logits (rows, V). */
export interface HeadCompute {
  logits(x: Float32Array, rows: number): Promise<Float32Array>;
  close(): Promise<void>;
}

/** A SwiGLU MLP (one Mixtral expert): x (tokens, H) -> (tokens, H). */
export interface MlpCompute {
  run(x: Float32Array, tokens: number): Promise<Float32Array>;
  close(): Promise<void>;
}

/** Builds the pieces of one stage from a checkpoint; closing it releases what they share. */
export interface StageCompute {
  layer(ckpt: WeightSource, layer: number): Promise<LayerCompute>;
  head(ckpt: WeightSource): Promise<HeadCompute>;
  expert(ckpt: WeightSource, layer: number, expert: number): Promise<MlpCompute>;
  close(): Promise<void>;
}
