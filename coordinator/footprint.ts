/**
 * Bytes a stage needs for each part of a model, from its config and how the workers hold weights:
 * as stored (native kernels: bf16/f16 at 2 bytes a value, quantized tensors at their quantized
 * size, each tensor at its own size) or widened to float32 (onnxruntime). Norm weights are
 * float32 either way.
 */
import type { MemberInfo } from '../common/cluster/member';
import type { ModelConfig } from '../common/model/config';
import { attentionSpecs, embeddingSpec, expertSpecs, lmHeadSpec, mlpSpecs, routerSpec, type TensorSpec } from '../common/model/weights';
import type { ModelFootprint } from './placement';

const F32_BYTES = 4;

/** Bytes of one weight tensor as held; `role` tells the embedding table apart from other matrices. */
export type TensorSizer = (spec: TensorSpec, role: 'embedding' | 'matrix') => number;

const elements = (spec: TensorSpec): number => spec.shape.reduce((a, b) => a * b, 1);

/** Whether every worker keeps weights as stored (so a stage sized that way fits on any of them). */
export function keepsStoredWeights(members: readonly MemberInfo[]): boolean {
  return members.length > 0 && members.every((m) => m.weightPrecision === 'stored');
}

/**
 * Bytes per linear-layer weight for a set of workers: the stored width when every one of them
 * keeps it, float32 otherwise.
 */
export function weightBytesFor(members: readonly MemberInfo[], storedBytes: number): number {
  return keepsStoredWeights(members) ? storedBytes : F32_BYTES;
}

/**
 * The footprint with each matrix sized by `sizeOf`. Layers and experts may differ in size (a
 * Q4_K_M file gives some layers Q6_K matrices): a layer or an expert is sized as the largest.
 */
export function footprintFromSizes(c: ModelConfig, sizeOf: TensorSizer): ModelFootprint {
  const H = c.hiddenSize;
  const isMoe = c.numExperts > 0;
  const matrices = (specs: readonly TensorSpec[]): number => specs.reduce((sum, spec) => sum + sizeOf(spec, 'matrix'), 0);
  let layerBytes = 0;
  let expertBytes = 0;
  for (let l = 0; l < c.numLayers; l++) {
    const a = attentionSpecs(c, l);
    const attention = matrices([a.q, a.k, a.v, a.o]) + F32_BYTES * 2 * H;
    const rest = isMoe ? matrices([routerSpec(c, l)]) : matrices(Object.values(mlpSpecs(c, l)));
    layerBytes = Math.max(layerBytes, attention + rest);
    for (let e = 0; e < c.numExperts; e++) expertBytes = Math.max(expertBytes, matrices(Object.values(expertSpecs(c, l, e))));
  }
  return {
    numLayers: c.numLayers,
    layerBytes,
    embeddingBytes: sizeOf(embeddingSpec(c), 'embedding'),
    headBytes: sizeOf(lmHeadSpec(c), 'matrix') + F32_BYTES * H,
    numExperts: c.numExperts,
    expertBytes,
  };
}

/** Every matrix at `weightBytes` a value; the embedding table at float32 (an upper bound). */
export function modelFootprint(c: ModelConfig, weightBytes: number = F32_BYTES): ModelFootprint {
  return footprintFromSizes(c, (spec, role) => (role === 'embedding' ? F32_BYTES : weightBytes) * elements(spec));
}
