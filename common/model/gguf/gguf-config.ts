/**
 * The model config of a llama-architecture GGUF file, derived from its metadata as a Hugging
 * Face config.json object (so that the coordinator can serve it to workers as it serves a
 * directory's config.json) and parsed by the same parseModelConfig. Architectures other than
 * llama (Mistral, and Mixtral as llama with experts) are refused.
 */
import { CheckpointError } from '../../errors';
import { parseModelConfig, type ModelConfig } from '../config';
import type { GgufMetadata } from './gguf-header';

/** general.architecture values Bora runs; llama.cpp writes Mistral and Mixtral as "llama". */
export const GGUF_ARCHITECTURES: readonly string[] = ['llama', 'mistral'];

/**
 * The shortest decimal that rounds to the same float32: GGUF stores rms_norm_eps and rope theta
 * as float32, converted from config.json's decimals, and this recovers those decimals (1e-5, not
 * 9.99999974e-6), so a GGUF and its source directory compute with the same constants.
 */
export function shortestFloat32Decimal(value: number): number {
  const target = Math.fround(value);
  for (let digits = 1; digits <= 9; digits++) {
    const candidate = Number(value.toPrecision(digits));
    if (Math.fround(candidate) === target) return candidate;
  }
  return value;
}

/** config.json keys derived from the metadata; `vocabFromTokens` sizes the vocabulary when no key does. */
export function configJsonFromGguf(meta: GgufMetadata, vocabFromTokens: number | undefined, hasOutputTensor: boolean): Record<string, unknown> {
  const arch = meta.string('general.architecture');
  if (!GGUF_ARCHITECTURES.includes(arch)) {
    throw new CheckpointError(meta.path, `architecture "${arch}" is not supported: Bora runs llama-architecture Mistral and Mixtral files`);
  }
  const key = (k: string): string => `${arch}.${k}`;
  const scaling = meta.string(key('rope.scaling.type'), undefined);
  if (scaling !== undefined && scaling !== 'none') {
    throw new CheckpointError(meta.path, `metadata "${key('rope.scaling.type')}" is "${scaling}": Bora runs unscaled rope only`);
  }
  const hidden = meta.integer(key('embedding_length'));
  const heads = meta.integer(key('attention.head_count'));
  const kvHeads = meta.integer(key('attention.head_count_kv'), heads);
  const headDim = meta.integer(key('attention.key_length'), heads > 0 ? hidden / heads : undefined);
  const valueDim = meta.integer(key('attention.value_length'), headDim);
  if (valueDim !== headDim) throw new CheckpointError(meta.path, `attention.value_length ${valueDim} differs from key_length ${headDim}`);
  const ropeDims = meta.integer(key('rope.dimension_count'), headDim);
  if (ropeDims !== headDim) throw new CheckpointError(meta.path, `rope.dimension_count ${ropeDims} is not the head width ${headDim}: Bora rotates whole heads`);
  const experts = meta.integer(key('expert_count'), 0);
  const vocab = meta.integer(key('vocab_size'), vocabFromTokens);
  if (vocab === undefined) throw new CheckpointError(meta.path, `neither "${key('vocab_size')}" nor tokenizer.ggml.tokens gives the vocabulary size`);
  const window = meta.integer(key('attention.sliding_window'), 0);
  const config: Record<string, unknown> = {
    model_type: experts > 0 ? 'mixtral' : 'mistral',
    hidden_act: 'silu',
    vocab_size: vocab,
    hidden_size: hidden,
    intermediate_size: meta.integer(key('feed_forward_length')),
    num_hidden_layers: meta.integer(key('block_count')),
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    head_dim: headDim,
    rms_norm_eps: shortestFloat32Decimal(meta.number(key('attention.layer_norm_rms_epsilon'), 1e-5)),
    rope_theta: shortestFloat32Decimal(meta.number(key('rope.freq_base'), 10000)),
    sliding_window: window > 0 ? window : null,
    max_position_embeddings: meta.integer(key('context_length'), 32768),
    bos_token_id: meta.integer('tokenizer.ggml.bos_token_id', 1),
    eos_token_id: meta.integer('tokenizer.ggml.eos_token_id', 2),
    tie_word_embeddings: !hasOutputTensor,
  };
  if (experts > 0) {
    config.num_local_experts = experts;
    config.num_experts_per_tok = meta.integer(key('expert_used_count'));
  }
  return config;
}

export function configFromGguf(configJson: Record<string, unknown>, path: string): ModelConfig {
  return parseModelConfig(JSON.stringify(configJson), path);
}
