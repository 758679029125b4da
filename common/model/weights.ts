/**
 * Hugging Face tensor names and the shapes the model config implies for them. Linear weights are
 * stored [out_features, in_features], as torch.nn.Linear keeps them.
 */
import type { ModelConfig } from './config';

export interface TensorSpec {
  readonly name: string;
  readonly shape: readonly number[];
}

export const EMBEDDING = 'model.embed_tokens.weight';
export const FINAL_NORM = 'model.norm.weight';
export const LM_HEAD = 'lm_head.weight';

export function embeddingSpec(c: ModelConfig): TensorSpec {
  return { name: EMBEDDING, shape: [c.vocabSize, c.hiddenSize] };
}

export function finalNormSpec(c: ModelConfig): TensorSpec {
  return { name: FINAL_NORM, shape: [c.hiddenSize] };
}

/** The LM head; tied models reuse the embedding matrix. */
export function lmHeadSpec(c: ModelConfig): TensorSpec {
  return { name: c.tieWordEmbeddings ? EMBEDDING : LM_HEAD, shape: [c.vocabSize, c.hiddenSize] };
}

/** Attention block and its two norms (and, for Mixtral, the router) of one decoder layer. */
export interface AttentionSpecs {
  readonly inputNorm: TensorSpec;
  readonly q: TensorSpec;
  readonly k: TensorSpec;
  readonly v: TensorSpec;
  readonly o: TensorSpec;
  readonly postAttentionNorm: TensorSpec;
}

export function attentionSpecs(c: ModelConfig, layer: number): AttentionSpecs {
  const p = `model.layers.${layer}`;
  const qWidth = c.numHeads * c.headDim;
  const kvWidth = c.numKvHeads * c.headDim;
  return {
    inputNorm: { name: `${p}.input_layernorm.weight`, shape: [c.hiddenSize] },
    q: { name: `${p}.self_attn.q_proj.weight`, shape: [qWidth, c.hiddenSize] },
    k: { name: `${p}.self_attn.k_proj.weight`, shape: [kvWidth, c.hiddenSize] },
    v: { name: `${p}.self_attn.v_proj.weight`, shape: [kvWidth, c.hiddenSize] },
    o: { name: `${p}.self_attn.o_proj.weight`, shape: [c.hiddenSize, qWidth] },
    postAttentionNorm: { name: `${p}.post_attention_layernorm.weight`, shape: [c.hiddenSize] },
  };
}

/** SwiGLU MLP: down(silu(gate(x)) * up(x)). Mistral's names. */
export interface MlpSpecs {
  readonly gate: TensorSpec;
  readonly up: TensorSpec;
  readonly down: TensorSpec;
}

export function mlpSpecs(c: ModelConfig, layer: number): MlpSpecs {
  const p = `model.layers.${layer}.mlp`;
  return {
    gate: { name: `${p}.gate_proj.weight`, shape: [c.intermediateSize, c.hiddenSize] },
    up: { name: `${p}.up_proj.weight`, shape: [c.intermediateSize, c.hiddenSize] },
    down: { name: `${p}.down_proj.weight`, shape: [c.hiddenSize, c.intermediateSize] },
  };
}

export function routerSpec(c: ModelConfig, layer: number): TensorSpec {
  return { name: `model.layers.${layer}.block_sparse_moe.gate.weight`, shape: [c.numExperts, c.hiddenSize] };
}

/** One Mixtral expert: w2(silu(w1(x)) * w3(x)), the same SwiGLU as Mistral's MLP. */
export function expertSpecs(c: ModelConfig, layer: number, expert: number): MlpSpecs {
  const p = `model.layers.${layer}.block_sparse_moe.experts.${expert}`;
  return {
    gate: { name: `${p}.w1.weight`, shape: [c.intermediateSize, c.hiddenSize] },
    up: { name: `${p}.w3.weight`, shape: [c.intermediateSize, c.hiddenSize] },
    down: { name: `${p}.w2.weight`, shape: [c.hiddenSize, c.intermediateSize] },
  };
}

/** Every tensor a stage holding layers [start, end) reads (plus embedding / head at the ends). */
export function stageTensorSpecs(c: ModelConfig, start: number, end: number): TensorSpec[] {
  const specs: TensorSpec[] = [];
  if (start === 0) specs.push(embeddingSpec(c));
  for (let layer = start; layer < end; layer++) {
    specs.push(...Object.values(attentionSpecs(c, layer)));
    if (c.numExperts === 0) specs.push(...Object.values(mlpSpecs(c, layer)));
    else {
      specs.push(routerSpec(c, layer));
      for (let e = 0; e < c.numExperts; e++) specs.push(...Object.values(expertSpecs(c, layer, e)));
    }
  }
  if (end === c.numLayers) {
    specs.push(finalNormSpec(c));
    // A tied head is the embedding matrix, already listed when this stage also holds layer 0.
    if (!(c.tieWordEmbeddings && start === 0)) specs.push(lmHeadSpec(c));
  }
  return specs;
}
