/** Bytes a stage needs for each part of a model, from its config (float32, as workers compute). */
import type { ModelConfig } from '../common/model/config';
import type { ModelFootprint } from './placement';

const F32_BYTES = 4;

export function modelFootprint(c: ModelConfig): ModelFootprint {
  const H = c.hiddenSize;
  const attention = (c.numHeads + 2 * c.numKvHeads) * c.headDim * H + H * c.numHeads * c.headDim + 2 * H;
  const mlp = 3 * H * c.intermediateSize;
  const isMoe = c.numExperts > 0;
  return {
    numLayers: c.numLayers,
    layerBytes: F32_BYTES * (attention + (isMoe ? c.numExperts * H : mlp)),
    // The embedding table stays in its stored dtype (at most 2 bytes for bf16/f16; f32 is 4).
    embeddingBytes: F32_BYTES * c.vocabSize * H,
    headBytes: F32_BYTES * (c.vocabSize * H + H),
    numExperts: c.numExperts,
    expertBytes: isMoe ? F32_BYTES * mlp : 0,
  };
}
