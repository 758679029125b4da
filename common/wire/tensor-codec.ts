/**
 * Tensors on the wire: float32 data with its dtype and shape. decode checks that the byte length
 * matches dtype x shape, so a malformed frame is refused with INVALID_ARGUMENT instead of
 * being read as garbage.
 */
import { InvalidArgumentError } from '../errors';
import type { WireTensor } from './messages';

export function encodeF32(values: Float32Array, shape: readonly number[]): WireTensor {
  return { dtype: 'DTYPE_F32', shape: [...shape], data: Buffer.from(values.buffer, values.byteOffset, values.byteLength) };
}

/** Decodes a float32 tensor; `expectedShape` entries of -1 match any size. */
export function decodeF32(tensor: WireTensor | null | undefined, what: string, expectedShape?: readonly number[]): Float32Array {
  if (tensor === null || tensor === undefined) throw new InvalidArgumentError(`${what}: tensor missing`);
  if (tensor.dtype !== 'DTYPE_F32') throw new InvalidArgumentError(`${what}: dtype ${tensor.dtype} is not supported here (expected DTYPE_F32)`);
  // Each dimension on its own: [-1, -1] or [0, 2^53] multiply to a plausible count.
  if (!tensor.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new InvalidArgumentError(`${what}: shape [${tensor.shape.join(', ')}] has a dimension that is not a non-negative integer`);
  }
  const elements = tensor.shape.reduce((a, b) => a * b, 1);
  if (tensor.data.byteLength !== elements * 4) {
    throw new InvalidArgumentError(`${what}: shape [${tensor.shape.join(', ')}] needs ${elements * 4} bytes, got ${tensor.data.byteLength}`);
  }
  if (expectedShape !== undefined) {
    const ok = expectedShape.length === tensor.shape.length && expectedShape.every((d, i) => d === -1 || d === tensor.shape[i]);
    if (!ok) throw new InvalidArgumentError(`${what}: shape [${tensor.shape.join(', ')}] where [${expectedShape.join(', ')}] was expected`);
  }
  // Copy into an aligned, owned buffer: gRPC buffers may sit at any offset in a shared pool.
  const out = new Float32Array(elements);
  new Uint8Array(out.buffer).set(tensor.data);
  return out;
}
