/**
 * A linear layer's weight matrix for the native kernels: (rows, cols) in Hugging Face's
 * [out, in] layout, kept in the checkpoint's precision. bf16 and f16 are repacked into column
 * panels and stay 16-bit (half the memory and half the bytes read per token of a float32 copy);
 * the kernels widen them to float32 as they compute, which is exact, so results are those of the
 * float32 weights. Block-quantized matrices (Q8_0, Q4_0, Q4_K, Q6_K) are kept as their ggml
 * blocks, row by row, exactly as stored (no repack), and the kernels dequantize them exactly in
 * registers, so results are those of the float32 dequantized weights.
 *
 * Stacked parts (q, k, v -> qkv; gate, up -> gateUp) of one quantized type are concatenated
 * rows; parts of different quantized types (a Q4_K_M file has v in Q6_K) stay separate matrices
 * in one `PackedMatrix` with `parts`, applied one by one and their outputs placed side by side.
 */
import { InvalidArgumentError } from '../errors';
import type { RawTensor } from '../model/checkpoint';
import { isQuantDtype, QUANT_BLOCK, rowBytes, toFloat32, type QuantDtype, type StorageDtype } from '../model/dtype';
import { quantPackedDtype, type FloatPackedDtype, type NativeKernels, type PackedDtype } from './native-kernels';

export interface PackedMatrix {
  readonly rows: number; // N, outputs
  readonly cols: number; // K, inputs
  readonly dtype: PackedDtype;
  /** Float panels, or for a quantized dtype the (rows, cols) matrix's blocks row by row. */
  readonly panels: Float32Array | Uint16Array | Uint8Array;
  /**
   * Present when stacked parts could not share one storage type: the parts in order, each a
   * matrix of its own (then `panels` is empty and `dtype` is the first part's).
   */
  readonly parts?: readonly PackedMatrix[];
}

const PACKED: Readonly<Record<StorageDtype, FloatPackedDtype>> = { F32: 'f32', BF16: 'bf16', F16: 'f16' };

/** The tensor's values as a typed array of its stored width (copied when misaligned). */
function storedValues(t: RawTensor): Float32Array | Uint16Array {
  const width = t.dtype === 'F32' ? 4 : 2;
  const bytes = t.bytes.byteOffset % width === 0 ? t.bytes : t.bytes.slice();
  const count = bytes.byteLength / width;
  return t.dtype === 'F32' ? new Float32Array(bytes.buffer, bytes.byteOffset, count) : new Uint16Array(bytes.buffer, bytes.byteOffset, count);
}

/** A quantized matrix's rows must be whole blocks, and its bytes all of them. */
function checkQuantized(t: RawTensor, dtype: QuantDtype): void {
  const [rows, cols] = t.shape;
  const perRow = rowBytes(dtype, cols);
  if (perRow === undefined) {
    throw new InvalidArgumentError(`a ${dtype} matrix needs rows of whole ${QUANT_BLOCK[dtype].elements}-value blocks; a row of [${t.shape}] has ${cols} values`);
  }
  if (t.bytes.byteLength !== perRow * rows) throw new InvalidArgumentError(`a ${dtype} [${t.shape}] matrix takes ${perRow * rows} bytes, not ${t.bytes.byteLength}`);
}

/** Parts of one quantized type: their blocks concatenated (no copy for a single part). */
function packQuantized(parts: readonly RawTensor[], dtype: QuantDtype, rows: number, cols: number): PackedMatrix {
  for (const t of parts) checkQuantized(t, dtype);
  let blocks = parts[0].bytes;
  if (parts.length > 1) {
    blocks = new Uint8Array(parts.reduce((n, t) => n + t.bytes.byteLength, 0));
    let offset = 0;
    for (const t of parts) {
      blocks.set(t.bytes, offset);
      offset += t.bytes.byteLength;
    }
  }
  return { rows, cols, dtype: quantPackedDtype(dtype), panels: blocks };
}

/**
 * Packs matrices with the same number of columns stacked on the output axis (q, k, v -> qkv).
 * Mixed float precisions are stored as float32; parts of several types where one is quantized
 * stay separate (`parts`), each in its own type, runs of equal types stacked.
 */
export function packStacked(kernels: NativeKernels, parts: readonly RawTensor[], cols: number, threads: number): PackedMatrix {
  const rows = parts.reduce((n, t) => n + t.shape[0], 0);
  for (const t of parts) {
    if (t.shape.length !== 2 || t.shape[1] !== cols) throw new InvalidArgumentError(`cannot stack a [${t.shape}] matrix into one with ${cols} columns`);
  }
  const uniform = parts.every((t) => t.dtype === parts[0].dtype);
  const first = parts[0].dtype;
  if (uniform && isQuantDtype(first)) return packQuantized(parts, first, rows, cols);
  if (!uniform && parts.some((t) => isQuantDtype(t.dtype))) {
    const runs: RawTensor[][] = [];
    for (const t of parts) {
      const last = runs.at(-1);
      if (last !== undefined && last[0].dtype === t.dtype) last.push(t);
      else runs.push([t]);
    }
    const packed = runs.map((run) => packStacked(kernels, run, cols, threads));
    return { rows, cols, dtype: packed[0].dtype, panels: new Uint8Array(0), parts: packed };
  }
  const dtype: FloatPackedDtype = uniform ? PACKED[first as StorageDtype] : 'f32';
  const values = parts.map((t) => (uniform ? storedValues(t) : toFloat32(t.bytes, t.dtype)));
  let stacked: Float32Array | Uint16Array = values[0];
  if (values.length > 1) {
    stacked = dtype === 'f32' ? new Float32Array(rows * cols) : new Uint16Array(rows * cols);
    let offset = 0;
    for (const v of values) {
      stacked.set(v, offset);
      offset += v.length;
    }
  }
  return { rows, cols, dtype, panels: kernels.pack(stacked, dtype, rows, threads) };
}

/** Bytes of weights a product with `m` reads (what one batch-1 decode step streams from memory). */
export function packedBytes(m: PackedMatrix): number {
  return m.parts === undefined ? m.panels.byteLength : m.parts.reduce((n, p) => n + packedBytes(p), 0);
}

/** The native kernels with the thread count of the stage that uses them. */
export class LinearKernels {
  constructor(
    readonly kernels: NativeKernels,
    readonly threads: number,
  ) {}

  pack(parts: readonly RawTensor[], cols: number): PackedMatrix {
    return packStacked(this.kernels, parts, cols, this.threads);
  }

  /** x (rows, cols) @ m^T -> a new (rows, m.rows) array, or added into `into`. */
  apply(x: Float32Array, rows: number, m: PackedMatrix, into?: Float32Array): Float32Array {
    if (x.length !== rows * m.cols) throw new InvalidArgumentError(`linear: input has ${x.length} values, expected ${rows} x ${m.cols}`);
    const out = into ?? new Float32Array(rows * m.rows);
    if (m.parts !== undefined) {
      this.applyParts(x, rows, m, out, into !== undefined);
      return out;
    }
    this.kernels.linear(x, m.panels, m.dtype, m.rows, out, rows, into !== undefined, this.threads);
    return out;
  }

  /** Separate parts: each one's (rows, part.rows) output goes to its columns of out. */
  private applyParts(x: Float32Array, rows: number, m: PackedMatrix, out: Float32Array, accumulate: boolean): void {
    let offset = 0;
    for (const part of m.parts!) {
      const partOut = this.apply(x, rows, part);
      for (let r = 0; r < rows; r++) {
        const dst = r * m.rows + offset;
        const src = partOut.subarray(r * part.rows, (r + 1) * part.rows);
        if (!accumulate) out.set(src, dst);
        else for (let j = 0; j < part.rows; j++) out[dst + j] += src[j];
      }
      offset += part.rows;
    }
  }

  /** SwiGLU's activation: (rows, 2I) gate|up -> (rows, I). */
  siluMul(gateUp: Float32Array, rows: number): Float32Array {
    const out = new Float32Array(gateUp.length / 2);
    this.kernels.siluMul(gateUp, rows, out);
    return out;
  }
}
