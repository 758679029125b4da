/** Reads one decoder layer's tensors from a checkpoint into the layouts the graphs take. */
import type { WeightSource } from '../model/weight-source';
import { attentionSpecs, expertSpecs, mlpSpecs, routerSpec, type MlpSpecs, type TensorSpec } from '../model/weights';
import type { AttentionWeights, MlpWeights } from './layer-graphs';

function read(ckpt: WeightSource, spec: TensorSpec): Promise<Float32Array> {
  return ckpt.readF32(spec.name, spec.shape);
}

/** Stacks matrices along their first (output) axis. */
function stackRows(parts: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

export async function readAttentionWeights(ckpt: WeightSource, layer: number): Promise<AttentionWeights> {
  const s = attentionSpecs(ckpt.config, layer);
  return {
    inputNorm: await read(ckpt, s.inputNorm),
    qkv: stackRows([await read(ckpt, s.q), await read(ckpt, s.k), await read(ckpt, s.v)]),
    o: await read(ckpt, s.o),
    postAttentionNorm: await read(ckpt, s.postAttentionNorm),
  };
}

async function readSwiGlu(ckpt: WeightSource, s: MlpSpecs): Promise<MlpWeights> {
  return { gateUp: stackRows([await read(ckpt, s.gate), await read(ckpt, s.up)]), down: await read(ckpt, s.down) };
}

export function readMlpWeights(ckpt: WeightSource, layer: number): Promise<MlpWeights> {
  return readSwiGlu(ckpt, mlpSpecs(ckpt.config, layer));
}

export function readExpertWeights(ckpt: WeightSource, layer: number, expert: number): Promise<MlpWeights> {
  return readSwiGlu(ckpt, expertSpecs(ckpt.config, layer, expert));
}

export function readRouterWeights(ckpt: WeightSource, layer: number): Promise<Float32Array> {
  return read(ckpt, routerSpec(ckpt.config, layer));
}
