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
