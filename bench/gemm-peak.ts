/**
 * The machine's measured GEMM peak for one weight type, and a model's FLOPs per decoded token:
 * together the compute bound of batched decode (peak FLOP/s / FLOPs per token), which bench:cluster
 * sets the 16-stream aggregate against.
 *
 * The peak is the native linear kernel (the engine's) on an FFN-sized matrix (5632 x 2048, the
 * benchmark model's up projection) at batches of 16, 64 and 128 rows, best of several repeats at
 * each: the least flattering choice for the ratio. FLOPs per token are 2 per weight of every
 * matrix a token passes through (attention, MLP or its routed experts, the head; the embedding is
 * a lookup) plus attention's 4 x heads x head_dim per layer and cached position.
 */
import { randomFillSync } from 'node:crypto';
import { packStacked } from '../common/kernels/packed-matrix';
import { nativeKernels, type NativeKernels } from '../common/kernels/native-kernels';
import type { ModelConfig } from '../common/model/config';
import { isQuantDtype, type TensorDtype } from '../common/model/dtype';

const N = 5632;
const K = 2048;
const BATCHES = [16, 64, 128];
const REPEATS = 5;

export interface GemmPeak {
  readonly dtype: TensorDtype;
  readonly threads: number;
  readonly flopsPerSecond: number;
  readonly bestBatch: number;
  readonly byBatch: Readonly<Record<number, number>>;
}

/** Random weights N x K as stored in `dtype` (bf16 bits, or quantized blocks of gaussian-ish values). */
function weights(kernels: NativeKernels, dtype: TensorDtype, threads: number): { dtype: TensorDtype; shape: number[]; bytes: Uint8Array } {
  const f32 = new Float32Array(N * K);
  const noise = new Uint32Array(f32.length);
  randomFillSync(noise);
  for (let i = 0; i < f32.length; i++) f32[i] = (noise[i] / 2 ** 32 - 0.5) * 0.05;
  if (isQuantDtype(dtype)) return { dtype, shape: [N, K], bytes: kernels.quantize(f32, dtype.toLowerCase() as 'q8_0', N, threads) };
  if (dtype === 'F32') return { dtype, shape: [N, K], bytes: new Uint8Array(f32.buffer) };
  // bf16 and f16 are timed as bf16 panels (the same kernel width).
  const bits = new Uint16Array(f32.length);
  const words = new Uint32Array(f32.buffer);
  for (let i = 0; i < bits.length; i++) bits[i] = words[i] >>> 16;
  return { dtype: 'BF16', shape: [N, K], bytes: new Uint8Array(bits.buffer) };
}

export function measureGemmPeak(dtype: TensorDtype, threads: number): GemmPeak {
  const kernels = nativeKernels();
  if (kernels === undefined) throw new Error('the GEMM peak needs the native kernels (npm run build)');
  const packed = packStacked(kernels, [weights(kernels, dtype, threads)], K, threads);
  const byBatch: Record<number, number> = {};
  for (const rows of BATCHES) {
    const x = new Float32Array(rows * K).map((_, i) => Math.sin(i) * 0.1);
    const out = new Float32Array(rows * N);
    let bestMs = Infinity;
    for (let r = 0; r < REPEATS; r++) {
      const started = performance.now();
      kernels.linear(x, packed.panels, packed.dtype, N, out, rows, false, threads);
      bestMs = Math.min(bestMs, performance.now() - started);
    }
    byBatch[rows] = (2 * rows * N * K) / (bestMs / 1000);
  }
  const bestBatch = BATCHES.reduce((best, b) => (byBatch[b] > byBatch[best] ? b : best), BATCHES[0]);
  return { dtype, threads, flopsPerSecond: byBatch[bestBatch], bestBatch, byBatch };
}

/** FLOPs of one decoded token at `contextTokens` cached positions. */
export function flopsPerToken(c: ModelConfig, contextTokens: number): number {
  const attention = c.hiddenSize * c.numHeads * c.headDim + 2 * c.hiddenSize * c.numKvHeads * c.headDim + c.numHeads * c.headDim * c.hiddenSize;
  const mlp = 3 * c.hiddenSize * c.intermediateSize * (c.numExperts > 0 ? c.expertsPerToken : 1);
  const router = c.numExperts > 0 ? c.hiddenSize * c.numExperts : 0;
  const matrices = c.numLayers * (attention + mlp + router) + c.hiddenSize * c.vocabSize;
  return 2 * matrices + c.numLayers * 4 * c.numHeads * c.headDim * contextTokens;
}
