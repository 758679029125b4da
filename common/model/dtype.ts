/**
 * Storage formats of checkpoint tensors and their conversion to float32, the format Bora
 * computes in. Conversions are exact widenings (bf16/f16 -> f32), dequantization of ggml's
 * block formats (quant-formats.ts) or round-to-nearest-even narrowings (f32 -> bf16/f16, used
 * when writing checkpoints).
 */
import { InvalidArgumentError } from '../errors';
import { dequantize } from './quant-formats';

export type StorageDtype = 'BF16' | 'F16' | 'F32';

export const DTYPE_BYTES: Readonly<Record<StorageDtype, number>> = Object.freeze({ BF16: 2, F16: 2, F32: 4 });

export function isStorageDtype(value: unknown): value is StorageDtype {
  return value === 'BF16' || value === 'F16' || value === 'F32';
}

/**
 * Block-quantized formats, in ggml's (llama.cpp's) block layouts so that GGUF data is used as it
 * is stored: a row of a quantized matrix is a run of whole blocks along its inner (input) axis.
 */
export type QuantDtype = 'Q8_0' | 'Q4_0' | 'Q4_K' | 'Q6_K';

/** Any format a tensor's bytes may be stored in. */
export type TensorDtype = StorageDtype | QuantDtype;

/** Values per block and bytes per block of each quantized format (ggml's block_q8_0, ...). */
export const QUANT_BLOCK: Readonly<Record<QuantDtype, { readonly elements: number; readonly bytes: number }>> = Object.freeze({
  Q8_0: { elements: 32, bytes: 34 },
  Q4_0: { elements: 32, bytes: 18 },
  Q4_K: { elements: 256, bytes: 144 },
  Q6_K: { elements: 256, bytes: 210 },
});

export function isQuantDtype(value: unknown): value is QuantDtype {
  return value === 'Q8_0' || value === 'Q4_0' || value === 'Q4_K' || value === 'Q6_K';
}

export function isTensorDtype(value: unknown): value is TensorDtype {
  return isStorageDtype(value) || isQuantDtype(value);
}

/** Bytes of one row of `rowLength` values; undefined when a quantized row is not whole blocks. */
export function rowBytes(dtype: TensorDtype, rowLength: number): number | undefined {
  if (isStorageDtype(dtype)) return rowLength * DTYPE_BYTES[dtype];
  const block = QUANT_BLOCK[dtype];
  return rowLength % block.elements === 0 ? (rowLength / block.elements) * block.bytes : undefined;
}

/**
 * Bytes of a tensor of `shape` stored as `dtype`; undefined when a quantized tensor's rows
 * (its last axis) are not whole blocks.
 */
export function tensorBytes(dtype: TensorDtype, shape: readonly number[]): number | undefined {
  const values = shape.reduce((n, d) => n * d, 1);
  if (isStorageDtype(dtype)) return values * DTYPE_BYTES[dtype];
  const block = QUANT_BLOCK[dtype];
  const rowLength = shape.at(-1) ?? 1;
  if (rowLength % block.elements !== 0) return undefined;
  return (values / block.elements) * block.bytes;
}

/** bf16 is the top half of a float32: widen by shifting the bits up. */
export function bf16ToF32(src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  const out = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  for (let i = 0; i < src.length; i++) out[i] = src[i] << 16;
  return dst;
}

/** Table of all 65536 half-precision values as float32, built on first use. */
let halfTable: Float32Array | undefined;
function f16Table(): Float32Array {
  if (halfTable !== undefined) return halfTable;
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exponent = (h >> 10) & 0x1f;
    const mantissa = h & 0x3ff;
    if (exponent === 0) table[h] = sign * mantissa * 2 ** -24;
    else if (exponent === 31) table[h] = mantissa === 0 ? sign * Infinity : NaN;
    else table[h] = sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
  }
  halfTable = table;
  return table;
}

export function f16ToF32(src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  const table = f16Table();
  for (let i = 0; i < src.length; i++) dst[i] = table[src[i]];
  return dst;
}

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** float32 -> bf16 bits, round to nearest even; NaN stays NaN. */
export function f32ToBf16Bits(value: number): number {
  scratchF32[0] = value;
  const bits = scratchU32[0];
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x7fffff) !== 0) return (bits >>> 16) | 0x40;
  const rounded = bits + 0x7fff + ((bits >>> 16) & 1);
  return (rounded >>> 16) & 0xffff;
}

/** float32 -> IEEE half bits, round to nearest even, overflow to infinity. */
export function f32ToF16Bits(value: number): number {
  scratchF32[0] = value;
  const bits = scratchU32[0];
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  let mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa !== 0 ? 0x200 : 0);
  let halfExp = exponent - 127 + 15;
  if (halfExp >= 0x1f) return sign | 0x7c00;
  if (halfExp <= 0) {
    if (halfExp < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - halfExp;
    const halfMant = mantissa >>> shift;
    const rest = mantissa & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    const round = rest > halfway || (rest === halfway && (halfMant & 1) === 1) ? 1 : 0;
    return sign | (halfMant + round);
  }
  const halfMant = mantissa >>> 13;
  const rest = mantissa & 0x1fff;
  const round = rest > 0x1000 || (rest === 0x1000 && (halfMant & 1) === 1) ? 1 : 0;
  // A carry out of the mantissa correctly bumps the exponent (and may reach infinity).
  return sign | ((halfExp << 10) + halfMant + round);
}

/** Converts raw little-endian bytes of `dtype` to a fresh float32 array. */
export function toFloat32(bytes: Uint8Array, dtype: TensorDtype): Float32Array {
  if (isQuantDtype(dtype)) {
    const block = QUANT_BLOCK[dtype];
    if (bytes.byteLength % block.bytes !== 0) throw new InvalidArgumentError(`${dtype}: ${bytes.byteLength} bytes are not whole blocks of ${block.bytes}`);
    return dequantize(bytes, dtype, (bytes.byteLength / block.bytes) * block.elements);
  }
  const count = bytes.byteLength / DTYPE_BYTES[dtype];
  // Copy into an aligned buffer first: a view at an odd byte offset cannot be typed.
  const aligned = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  switch (dtype) {
    case 'F32':
      return new Float32Array(aligned.buffer.slice(aligned.byteOffset, aligned.byteOffset + aligned.byteLength));
    case 'BF16':
      return bf16ToF32(new Uint16Array(aligned.buffer, aligned.byteOffset, count));
    case 'F16':
      return f16ToF32(new Uint16Array(aligned.buffer, aligned.byteOffset, count));
  }
}

/** Encodes float32 values as raw little-endian bytes of `dtype`. */
export function fromFloat32(values: Float32Array, dtype: StorageDtype): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const out = new Uint16Array(values.length);
  const narrow = dtype === 'BF16' ? f32ToBf16Bits : f32ToF16Bits;
  for (let i = 0; i < values.length; i++) out[i] = narrow(values[i]);
  return new Uint8Array(out.buffer);
}
