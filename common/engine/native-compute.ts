/**
 * Stage compute with the native kernels (common/kernels): every linear layer (q/k/v, o, the MLP,
 * the router, the experts and the LM head) runs on weights kept in the checkpoint's precision,
 * and attention runs natively too. Every kernel computes each output with the same operations in
 * the same order whatever else is in the call, so the engine is batch- and shape-invariant: a
 * token's logits are bit-identical whether its sequence is prefilled in one call, decoded token
 * by token, batched with others or replayed after a failure (tested). Replays after a reshard
 * therefore reproduce the tokens exactly. A decoder layer, top to bottom:
 *
 *   normed  = rmsnorm(hidden)                      native
 *   qkv     = normed @ Wqkv^T                      native
 *   context = attention(qkv, cache)                native, reading the caches' storage in place
 *                                                  and writing the new keys and values into it
 *   hidden += context @ Wo^T                       native, accumulating into the residual
 *   normed  = rmsnorm(hidden)                      native
 *   dense:  hidden += silu-mul(normed @ Wgu^T) @ Wdown^T          native
 *   MoE:    router logits = normed @ Wr^T; the experts run outside (stage-engine.ts)
 * Every call is generic over the packed matrices' dtype (LinearKernels.apply).
 */
import type { ModelConfig } from '../model/config';
import type { WeightSource } from '../model/weight-source';
import { attentionSpecs, expertSpecs, finalNormSpec, lmHeadSpec, mlpSpecs, routerSpec, type MlpSpecs, type TensorSpec } from '../model/weights';
import type { NativeKernels } from '../kernels/native-kernels';
import { LinearKernels, type PackedMatrix } from '../kernels/packed-matrix';
import type { AttentionBatch } from './attention-batch';
import type { HeadCompute, LayerCompute, LayerFeeds, LayerResult, MlpCompute, StageCompute } from './layer-compute';
import type { ComputeSettings } from './compute-settings';

/**
 * RMSNorm of each row of x (rows, width) as transformers computes it in float32:
 * x * rsqrt(mean(x^2) + eps) * weight. The reference for the native kernel (rms-norm.c), which
 * gives the same bits (tested); the engine uses the kernel.
 */
export function rmsNorm(x: Float32Array, rows: number, weight: Float32Array, eps: number): Float32Array {
  const width = weight.length;
  const out = new Float32Array(rows * width);
  for (let r = 0; r < rows; r++) {
    const base = r * width;
    let sumSquares = 0;
    for (let i = 0; i < width; i++) sumSquares += x[base + i] * x[base + i];
    const inv = Math.fround(1 / Math.sqrt(Math.fround(Math.fround(sumSquares / width) + eps)));
    for (let i = 0; i < width; i++) out[base + i] = weight[i] * Math.fround(x[base + i] * inv);
  }
  return out;
}

/** SwiGLU: down(silu(gate(x)) * up(x)), added into `into` when given. */
class NativeMlp implements MlpCompute {
  constructor(
    private readonly k: LinearKernels,
    private readonly gateUp: PackedMatrix, // (2I, H)
    private readonly down: PackedMatrix, // (H, I)
  ) {}

  apply(x: Float32Array, tokens: number, into?: Float32Array): Float32Array {
    const activated = this.k.siluMul(this.k.apply(x, tokens, this.gateUp), tokens);
    return this.k.apply(activated, tokens, this.down, into);
  }

  async run(x: Float32Array, tokens: number): Promise<Float32Array> {
    return this.apply(x, tokens);
  }

  async close(): Promise<void> {}
}

interface NativeAttentionWeights {
  readonly inputNorm: Float32Array;
  readonly qkv: PackedMatrix;
  readonly o: PackedMatrix;
  readonly postAttentionNorm: Float32Array;
}

class NativeLayer implements LayerCompute {
  constructor(
    readonly kind: 'dense' | 'moe',
    private readonly c: ModelConfig,
    private readonly k: LinearKernels,
    private readonly attn: NativeAttentionWeights,
    private readonly mlp: NativeMlp | undefined, // dense layers
    private readonly router: PackedMatrix | undefined, // MoE layers
  ) {}

  async run({ hidden, batch, cacheLayer }: LayerFeeds): Promise<LayerResult> {
    const N = batch.batchSize * batch.paddedTokens;
    const qkv = this.k.apply(this.norm(hidden, N, this.attn.inputNorm), N, this.attn.qkv);
    const context = this.attend(qkv, batch, cacheLayer);
    const residual = this.k.apply(context, N, this.attn.o, hidden.slice());
    const normed = this.norm(residual, N, this.attn.postAttentionNorm);
    if (this.mlp !== undefined) return { hidden: this.mlp.apply(normed, N, residual) };
    return { hidden: residual, normed, routerLogits: this.k.apply(normed, N, this.router!) };
  }

  private norm(x: Float32Array, rows: number, weight: Float32Array): Float32Array {
    const out = new Float32Array(x.length);
    this.k.kernels.rmsNorm(x, rows, weight, this.c.rmsNormEps, out, this.k.threads);
    return out;
  }

  /** Context (B, T, A*D) of the new tokens; their keys and values go into the caches' reserved slots. */
  private attend(qkv: Float32Array, batch: AttentionBatch, cacheLayer: number): Float32Array {
    const { numHeads: A, numKvHeads: K, headDim: D } = this.c;
    const { batchSize: B, paddedTokens: T } = batch;
    const context = new Float32Array(B * T * A * D);
    const keys: Float32Array[] = [];
    const values: Float32Array[] = [];
    const positions: Int32Array[] = [];
    const rows = new Int32Array(4 * B);
    batch.rows.forEach(({ cache, tokenCount }, b) => {
      const storage = cache.layerStorage(cacheLayer);
      keys.push(storage.k);
      values.push(storage.v);
      positions.push(storage.positions);
      rows.set([cache.length, storage.capacity, tokenCount, cache.nextPosition], 4 * b);
    });
    const dims = Int32Array.of(B, T, A, K, D, this.c.slidingWindow ?? 0);
    this.k.kernels.attention(qkv, batch.cos, batch.sin, context, keys, values, positions, rows, dims, this.k.threads);
    return context;
  }

  async close(): Promise<void> {}
}

class NativeHead implements HeadCompute {
  constructor(
    private readonly k: LinearKernels,
    private readonly norm: Float32Array,
    private readonly eps: number,
    private readonly lmHead: PackedMatrix,
  ) {}

  async logits(x: Float32Array, rows: number): Promise<Float32Array> {
    const normed = new Float32Array(x.length);
    this.k.kernels.rmsNorm(x, rows, this.norm, this.eps, normed, this.k.threads);
    return this.k.apply(normed, rows, this.lmHead);
  }

  async close(): Promise<void> {}
}

export class NativeCompute implements StageCompute {
  private readonly k: LinearKernels;

  constructor(
    kernels: NativeKernels,
    settings: ComputeSettings,
  ) {
    this.k = new LinearKernels(kernels, settings.threads);
  }

  private async matrix(ckpt: WeightSource, specs: readonly TensorSpec[]): Promise<PackedMatrix> {
    const parts = [];
    for (const s of specs) parts.push(await ckpt.readRaw(s.name, s.shape));
    return this.k.pack(parts, specs[0].shape[1]);
  }

  private async mlp(ckpt: WeightSource, s: MlpSpecs): Promise<NativeMlp> {
    return new NativeMlp(this.k, await this.matrix(ckpt, [s.gate, s.up]), await this.matrix(ckpt, [s.down]));
  }

  async layer(ckpt: WeightSource, layer: number): Promise<LayerCompute> {
    const c = ckpt.config;
    const s = attentionSpecs(c, layer);
    const attn: NativeAttentionWeights = {
      inputNorm: await ckpt.readF32(s.inputNorm.name, s.inputNorm.shape),
      qkv: await this.matrix(ckpt, [s.q, s.k, s.v]),
      o: await this.matrix(ckpt, [s.o]),
      postAttentionNorm: await ckpt.readF32(s.postAttentionNorm.name, s.postAttentionNorm.shape),
    };
    if (c.numExperts === 0) return new NativeLayer('dense', c, this.k, attn, await this.mlp(ckpt, mlpSpecs(c, layer)), undefined);
    return new NativeLayer('moe', c, this.k, attn, undefined, await this.matrix(ckpt, [routerSpec(c, layer)]));
  }

  async head(ckpt: WeightSource): Promise<HeadCompute> {
    const c = ckpt.config;
    const norm = await ckpt.readF32(finalNormSpec(c).name, finalNormSpec(c).shape);
    return new NativeHead(this.k, norm, c.rmsNormEps, await this.matrix(ckpt, [lmHeadSpec(c)]));
  }

  expert(ckpt: WeightSource, layer: number, expert: number): Promise<MlpCompute> {
    return this.mlp(ckpt, expertSpecs(ckpt.config, layer, expert));
  }

  async close(): Promise<void> {}

}
