/**
 * Loads Bora's native kernels (bora_kernels.node, built from the C files beside this one by
 * scripts/build-kernels.mjs). When they are missing (no C compiler at install time) the engine
 * runs its linear layers with onnxruntime instead; `BORA_KERNELS=onnx` asks for that explicitly and
 * `BORA_KERNELS=native` makes a missing build an error instead of a fallback.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { FailedPreconditionError } from '../errors';
import type { QuantDtype } from '../model/dtype';

/** Stored precision of packed weights: float32, or the 16 bits of bfloat16 / float16. */
export type FloatPackedDtype = 'f32' | 'bf16' | 'f16';

/** ggml block formats as the addon names them (quant.h): Q8_0 -> q8_0, ... */
export type QuantPackedDtype = 'q8_0' | 'q4_0' | 'q4_k' | 'q6_k';

/** What linear() accepts: float panels, or quantized blocks (unpacked, row by row). */
export type PackedDtype = FloatPackedDtype | QuantPackedDtype;

/** The addon's functions (common/kernels/addon.c). */
export interface NativeKernels {
  pack(w: Float32Array | Uint16Array, dtype: FloatPackedDtype, rows: number, threads: number): Float32Array | Uint16Array;
  /** out (rows, n) (+)= x (rows, K) @ w^T; w is panels from pack() or, for a quantized dtype, the (n, K) matrix's ggml blocks row by row. */
  linear(x: Float32Array, panels: Float32Array | Uint16Array | Uint8Array, dtype: PackedDtype, n: number, out: Float32Array, rows: number, accumulate: boolean, threads: number): void;
  /** Quantizes w (rows, K), float32 or bf16 bits, into ggml blocks row by row, on `threads` threads. */
  quantize(w: Float32Array | Uint16Array, dtype: QuantPackedDtype, rows: number, threads: number): Uint8Array;
  /** ggml blocks of `rows` rows -> float32 (rows, K). */
  dequantize(blocks: Uint8Array, dtype: QuantPackedDtype, rows: number, threads: number): Float32Array;
  siluMul(gateUp: Float32Array, rows: number, out: Float32Array): void;
  // ---- The layer step's kernels (attention over the caches in place, RMSNorm) ----
  /**
   * Attention of the new tokens over each sequence's cache storage, in place (attention.h):
   * writes the new keys and values at slots [length, length + count) of keys[b] / values[b]
   * (K, capacity, D) and the context (B, T, A*D). rows: [length, capacity, count, start] per
   * sequence; dims: [B, T, A, K, D, window] (window 0: unlimited).
   */
  attention(
    qkv: Float32Array,
    cos: Float32Array,
    sin: Float32Array,
    context: Float32Array,
    keys: readonly Float32Array[],
    values: readonly Float32Array[],
    positions: readonly Int32Array[],
    rows: Int32Array,
    dims: Int32Array,
    threads: number,
  ): void;
  /** out (rows, H) = RMSNorm of x (rows, H) with weight (H,), as rmsNorm in native-compute.ts. */
  rmsNorm(x: Float32Array, rows: number, weight: Float32Array, eps: number, out: Float32Array, threads: number): void;
  // ---- end of the layer step's kernels ----
  isa(): string;
}

/** Which code runs the engine's linear layers. */
export type LinearBackend = 'native' | 'onnx';

/** Where scripts/build-kernels.mjs puts the addon, relative to the package root. */
export const ADDON = join('build', 'native', 'bora_kernels.node');

let loaded: { kernels?: NativeKernels; reason?: string } | undefined;

/** build/native/bora_kernels.node in the nearest directory above this file that has one. */
function findAddon(): string | undefined {
  for (let dir = __dirname; ; dir = dirname(dir)) {
    if (existsSync(join(dir, ADDON))) return join(dir, ADDON);
    if (dirname(dir) === dir) return undefined;
  }
}

function load(): { kernels?: NativeKernels; reason?: string } {
  const path = process.env.BORA_KERNELS_PATH ?? findAddon();
  if (path === undefined || !existsSync(path)) return { reason: `${path ?? ADDON} is not built (run npm run build with a C compiler installed)` };
  try {
    return { kernels: require(path) as NativeKernels };
  } catch (err) {
    return { reason: `${path} does not load: ${(err as Error).message}` };
  }
}

/** The native kernels, or undefined with `nativeKernelsMissing()` saying why. */
export function nativeKernels(): NativeKernels | undefined {
  loaded ??= load();
  return loaded.kernels;
}

export function nativeKernelsMissing(): string | undefined {
  loaded ??= load();
  return loaded.reason;
}

/**
 * The backend to use: the requested one, else BORA_KERNELS, else native when it loads. Asking
 * for native when it cannot load is an error (a silent fallback would hide a broken build).
 */
export function resolveLinearBackend(requested?: LinearBackend): LinearBackend {
  const wanted = requested ?? parseBackend(process.env.BORA_KERNELS);
  if (wanted === 'onnx') return 'onnx';
  if (nativeKernels() !== undefined) return 'native';
  if (wanted === 'native') throw new FailedPreconditionError(`native kernels requested but unavailable: ${nativeKernelsMissing()}`);
  return 'onnx';
}

function parseBackend(value: string | undefined): LinearBackend | undefined {
  if (value === undefined || value === '' || value === 'auto') return undefined;
  if (value === 'native' || value === 'onnx') return value;
  throw new FailedPreconditionError(`BORA_KERNELS must be native, onnx or auto, not ${JSON.stringify(value)}`);
}

/** The addon's name of a quantized dtype. */
export function quantPackedDtype(dtype: QuantDtype): QuantPackedDtype {
  return dtype.toLowerCase() as QuantPackedDtype;
}

/**
 * Quantizes a (rows, K) matrix of float32 values or bf16 bits to `dtype` with the native row
 * quantizers (rows split over `threads` threads); K must be whole blocks of the type.
 */
export function quantizeRows(kernels: NativeKernels, dtype: QuantDtype, values: Float32Array | Uint16Array, rows: number, threads: number): Uint8Array {
  return kernels.quantize(values, quantPackedDtype(dtype), rows, threads);
}
