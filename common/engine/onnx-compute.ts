/**
 * Stage compute with onnxruntime alone: one graph per decoder layer with its weights as float32
 * initializers (onnxruntime prepacks them at load). Used where the native kernels are not built,
 * or when asked for (BORA_KERNELS=onnx).
 */
import type * as ort from 'onnxruntime-node';
import type { WeightSource } from '../model/weight-source';
import { finalNormSpec, lmHeadSpec } from '../model/weights';
import type { HeadCompute, LayerCompute, LayerFeeds, LayerResult, MlpCompute, StageCompute } from './layer-compute';
import { EXPERT_IO, HEAD_IO, LAYER_IO, denseLayerGraph, expertGraph, headGraph, moeAttentionGraph } from './layer-graphs';
import { readAttentionWeights, readExpertWeights, readMlpWeights, readRouterWeights } from './layer-weights';
import type { ComputeSettings } from './compute-settings';
import { createSession, f32Tensor, runF32, type SessionSettings } from './ort-session';

class OnnxLayer implements LayerCompute {
  constructor(
    readonly kind: 'dense' | 'moe',
    private readonly session: ort.InferenceSession,
    private readonly dims: { H: number; K: number; D: number; G: number },
  ) {}

  async run({ hidden, batch, cacheLayer }: LayerFeeds): Promise<LayerResult> {
    const { H, K, D, G } = this.dims;
    const { batchSize: B, paddedTokens: T, paddedSlots: P } = batch;
    // The graph takes the caches padded into one (B, K, P, D) input each.
    const pastK = new Float32Array(B * K * P * D);
    const pastV = new Float32Array(B * K * P * D);
    batch.rows.forEach(({ cache }, b) => cache.copyInto(cacheLayer, pastK, pastV, b, P));
    const out = await runF32(this.session, {
      [LAYER_IO.hidden]: f32Tensor(hidden, [B, T, H]),
      [LAYER_IO.cos]: f32Tensor(batch.cos, [B, T, D]),
      [LAYER_IO.sin]: f32Tensor(batch.sin, [B, T, D]),
      [LAYER_IO.mask]: f32Tensor(batch.mask, [B, 1, G * T, P + T]),
      [LAYER_IO.pastK]: f32Tensor(pastK, [B, K, P, D]),
      [LAYER_IO.pastV]: f32Tensor(pastV, [B, K, P, D]),
    });
    return {
      hidden: out[LAYER_IO.hiddenOut],
      k: out[LAYER_IO.newK],
      v: out[LAYER_IO.newV],
      normed: out[LAYER_IO.normedOut],
      routerLogits: out[LAYER_IO.routerLogits],
    };
  }

  close(): Promise<void> {
    return this.session.release();
  }
}

/** A one-input graph over rows of the hidden state: the head (-> logits) or an expert (-> hidden). */
class OnnxModule implements HeadCompute, MlpCompute {
  constructor(
    private readonly session: ort.InferenceSession,
    private readonly io: { input: string; output: string },
    private readonly inputWidth: number,
  ) {}

  private async apply(x: Float32Array, rows: number): Promise<Float32Array> {
    return (await runF32(this.session, { [this.io.input]: f32Tensor(x, [rows, this.inputWidth]) }))[this.io.output];
  }

  logits(x: Float32Array, rows: number): Promise<Float32Array> {
    return this.apply(x, rows);
  }

  run(x: Float32Array, tokens: number): Promise<Float32Array> {
    return this.apply(x, tokens);
  }

  close(): Promise<void> {
    return this.session.release();
  }
}

export class OnnxCompute implements StageCompute {
  private readonly settings: SessionSettings;

  constructor(compute: ComputeSettings) {
    this.settings = { intraOpThreads: compute.threads, allowSpinning: false };
  }

  async layer(ckpt: WeightSource, layer: number): Promise<LayerCompute> {
    const c = ckpt.config;
    const attn = await readAttentionWeights(ckpt, layer);
    const dims = { H: c.hiddenSize, K: c.numKvHeads, D: c.headDim, G: c.numHeads / c.numKvHeads };
    if (c.numExperts === 0) {
      const graph = denseLayerGraph(c, attn, await readMlpWeights(ckpt, layer));
      return new OnnxLayer('dense', await createSession(graph, this.settings), dims);
    }
    const graph = moeAttentionGraph(c, attn, await readRouterWeights(ckpt, layer));
    return new OnnxLayer('moe', await createSession(graph, this.settings), dims);
  }

  async head(ckpt: WeightSource): Promise<HeadCompute> {
    const c = ckpt.config;
    const norm = await ckpt.readF32(finalNormSpec(c).name, finalNormSpec(c).shape);
    const lmHead = await ckpt.readF32(lmHeadSpec(c).name, lmHeadSpec(c).shape);
    return new OnnxModule(await createSession(headGraph(c, norm, lmHead), this.settings), HEAD_IO, c.hiddenSize);
  }

  async expert(ckpt: WeightSource, layer: number, expert: number): Promise<MlpCompute> {
    const weights = await readExpertWeights(ckpt, layer, expert);
    return new OnnxModule(await createSession(expertGraph(ckpt.config, weights), this.settings), EXPERT_IO, ckpt.config.hiddenSize);
  }

  async close(): Promise<void> {}
}
