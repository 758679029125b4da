/**
 * Bytes a stage needs for each part of a model, from its config and how the workers hold weights:
 * in the checkpoint's precision (native kernels) or as float32 (onnxruntime). Norm weights are
 * float32 either way; the embedding table stays in its stored dtype.
 */
import type { MemberInfo } from '../common/cluster/member';
import type { ModelConfig } from '../common/model/config';
import type { ModelFootprint } from './placement';

const F32_BYTES = 4;

/**
 * Bytes per linear-layer weight for a set of workers: the stored width when every one of them
 * keeps it (so a stage fits on any of them), float32 otherwise.
 */
export function weightBytesFor(members: readonly MemberInfo[], storedBytes: number): number {
  return members.length > 0 && members.every((m) => m.weightPrecision === 'stored') ? storedBytes : F32_BYTES;
}

export function modelFootprint(c: ModelConfig, weightBytes: number = F32_BYTES): ModelFootprint {
  const H = c.hiddenSize;
  const attention = weightBytes * ((c.numHeads + 2 * c.numKvHeads) * c.headDim * H + H * c.numHeads * c.headDim) + F32_BYTES * 2 * H;
  const mlp = weightBytes * 3 * H * c.intermediateSize;
  const isMoe = c.numExperts > 0;
  return {
    numLayers: c.numLayers,
    layerBytes: attention + (isMoe ? weightBytes * c.numExperts * H : mlp),
    // The embedding table stays in its stored dtype (at most 2 bytes for bf16/f16; f32 is 4).
    embeddingBytes: F32_BYTES * c.vocabSize * H,
    headBytes: weightBytes * c.vocabSize * H + F32_BYTES * H,
    numExperts: c.numExperts,
    expertBytes: isMoe ? mlp : 0,
  };
}
