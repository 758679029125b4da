/**
 * A linear layer's weight matrix for the native kernels: (rows, cols) in Hugging Face's
 * [out, in] layout, repacked into column panels and kept in the checkpoint's precision. bf16 and
 * f16 stay 16-bit (half the memory and half the bytes read per token of a float32 copy); the
 * kernels widen them to float32 as they compute, which is exact, so results are those of the
 * float32 weights.
 */
import { InvalidArgumentError } from '../errors';
import type { RawTensor } from '../model/checkpoint';
import { isQuantDtype, toFloat32, type StorageDtype } from '../model/dtype';
import type { NativeKernels, PackedDtype } from './native-kernels';

export interface PackedMatrix {
  readonly rows: number; // N, outputs
  readonly cols: number; // K, inputs
  readonly dtype: PackedDtype;
  readonly panels: Float32Array | Uint16Array;
}

const PACKED: Readonly<Record<StorageDtype, PackedDtype>> = { F32: 'f32', BF16: 'bf16', F16: 'f16' };

/** The tensor's values as a typed array of its stored width (copied when misaligned). */
function storedValues(t: RawTensor): Float32Array | Uint16Array {
  const width = t.dtype === 'F32' ? 4 : 2;
  const bytes = t.bytes.byteOffset % width === 0 ? t.bytes : t.bytes.slice();
  const count = bytes.byteLength / width;
  return t.dtype === 'F32' ? new Float32Array(bytes.buffer, bytes.byteOffset, count) : new Uint16Array(bytes.buffer, bytes.byteOffset, count);
}

/**
 * Packs matrices with the same number of columns stacked on the output axis (q, k, v -> qkv).
 * Mixed precisions are stored as float32.
 */
export function packStacked(kernels: NativeKernels, parts: readonly RawTensor[], cols: number, threads: number): PackedMatrix {
  const rows = parts.reduce((n, t) => n + t.shape[0], 0);
  for (const t of parts) {
    if (t.shape.length !== 2 || t.shape[1] !== cols) throw new InvalidArgumentError(`cannot stack a [${t.shape}] matrix into one with ${cols} columns`);
  }
  for (const t of parts) {
    if (isQuantDtype(t.dtype)) throw new InvalidArgumentError(`the native kernels do not run ${t.dtype} matrices yet`);
  }
  const uniform = parts.every((t) => t.dtype === parts[0].dtype);
  const dtype: PackedDtype = uniform ? PACKED[parts[0].dtype as StorageDtype] : 'f32';
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
    this.kernels.linear(x, m.panels, m.dtype, m.rows, out, rows, into !== undefined, this.threads);
    return out;
  }

  /** SwiGLU's activation: (rows, 2I) gate|up -> (rows, I). */
  siluMul(gateUp: Float32Array, rows: number): Float32Array {
    const out = new Float32Array(gateUp.length / 2);
    this.kernels.siluMul(gateUp, rows, out);
    return out;
  }
}
