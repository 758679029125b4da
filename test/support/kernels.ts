/** Shared by the tests of the native kernels: when to skip them, and deterministic inputs. */
import { nativeKernelsMissing } from '../../common/kernels/native-kernels';

/**
 * The reason to skip tests of the native kernels (they are not built), or false. CI sets
 * BORA_KERNELS=native, so a build that went missing fails there instead of skipping.
 */
export const nativeSkip: string | false = process.env.BORA_KERNELS === 'native' ? false : (nativeKernelsMissing() ?? false);

/** `count` deterministic values in [-scale, scale), from `seed`. */
export function seededValues(count: number, seed: number, scale = 1): Float32Array {
  const out = new Float32Array(count);
  let s = seed >>> 0;
  for (let i = 0; i < count; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 31 - 1) * scale;
  }
  return out;
}

/**
 * Runs fn with the quantized kernels in one of their two modes: 'q8' (the default: integer dot
 * products over 8-bit activations) or 'f32' (exact float32 products of the dequantized weights,
 * BORA_QUANT_ACTIVATIONS=f32, which the addon reads at each call), restoring the variable after.
 */
export async function withQuantActivations<T>(mode: 'q8' | 'f32', fn: () => Promise<T> | T): Promise<T> {
  const before = process.env.BORA_QUANT_ACTIVATIONS;
  if (mode === 'f32') process.env.BORA_QUANT_ACTIVATIONS = 'f32';
  else delete process.env.BORA_QUANT_ACTIVATIONS;
  try {
    return await fn();
  } finally {
    if (before === undefined) delete process.env.BORA_QUANT_ACTIVATIONS;
    else process.env.BORA_QUANT_ACTIVATIONS = before;
  }
}
