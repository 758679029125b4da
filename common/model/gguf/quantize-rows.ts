/**
 * The quantizer the GGUF writer calls: one function from float32 rows to a quantized format's
 * blocks, so that a faster implementation (native) replaces this one in one place. Here: the
 * reference Q8_0 and Q4_0 quantizers in TypeScript (llama.cpp's reference rounding); the
 * K-quants are not available yet.
 */
import { FailedPreconditionError, InvalidArgumentError } from '../../errors';
import { f32ToF16Bits, type QuantDtype } from '../dtype';

/** `values` holds `rows` x `cols` float32 values, row-major; returns the rows' blocks, row by row. */
export type QuantizeRows = (type: QuantDtype, values: Float32Array, rows: number, cols: number) => Uint8Array;

const BLOCK_ELEMENTS = 32;

/** C's roundf: halves away from zero. */
const roundAway = (x: number): number => Math.sign(x) * Math.round(Math.abs(x));

/** Q8_0: per 32 values, scale d = max|x| / 127 (f16), then round(x / d) as int8. */
export function quantizeQ8_0(values: Float32Array): Uint8Array {
  const blocks = values.length / BLOCK_ELEMENTS;
  const blockBytes = 2 + BLOCK_ELEMENTS;
  const out = new Uint8Array(blocks * blockBytes);
  const view = new DataView(out.buffer);
  const quants = new Int8Array(out.buffer);
  for (let b = 0; b < blocks; b++) {
    const first = b * BLOCK_ELEMENTS;
    let maxAbs = 0;
    for (let j = 0; j < BLOCK_ELEMENTS; j++) maxAbs = Math.max(maxAbs, Math.abs(values[first + j]));
    const d = maxAbs / 127;
    const inv = d === 0 ? 0 : 1 / d;
    const at = b * blockBytes;
    view.setUint16(at, f32ToF16Bits(d), true);
    for (let j = 0; j < BLOCK_ELEMENTS; j++) quants[at + 2 + j] = roundAway(values[first + j] * inv);
  }
  return out;
}

/**
 * Q4_0: per 32 values, scale d = m / -8 where m is the value of largest magnitude (f16); each
 * value becomes a nibble q = min(15, trunc(x / d + 8.5)), read back as (q - 8) * d. Byte j holds
 * value j in its low nibble and value j + 16 in its high nibble.
 */
export function quantizeQ4_0(values: Float32Array): Uint8Array {
  const blocks = values.length / BLOCK_ELEMENTS;
  const half = BLOCK_ELEMENTS / 2;
  const blockBytes = 2 + half;
  const out = new Uint8Array(blocks * blockBytes);
  const view = new DataView(out.buffer);
  for (let b = 0; b < blocks; b++) {
    const first = b * BLOCK_ELEMENTS;
    let extreme = 0;
    for (let j = 0; j < BLOCK_ELEMENTS; j++) if (Math.abs(values[first + j]) > Math.abs(extreme)) extreme = values[first + j];
    const d = extreme / -8;
    const inv = d === 0 ? 0 : 1 / d;
    const at = b * blockBytes;
    view.setUint16(at, f32ToF16Bits(d), true);
    for (let j = 0; j < half; j++) {
      const low = Math.min(15, Math.trunc(values[first + j] * inv + 8.5));
      const high = Math.min(15, Math.trunc(values[first + half + j] * inv + 8.5));
      out[at + 2 + j] = low | (high << 4);
    }
  }
  return out;
}

/** The TypeScript quantizers: Q8_0 and Q4_0; Q4_K and Q6_K are refused until the native ones land. */
export const quantizeRowsTs: QuantizeRows = (type, values, rows, cols) => {
  if (values.length !== rows * cols) throw new InvalidArgumentError(`quantize: ${values.length} values are not ${rows} x ${cols}`);
  if (cols % BLOCK_ELEMENTS !== 0) throw new InvalidArgumentError(`quantize: rows of ${cols} values are not whole ${type} blocks`);
  switch (type) {
    case 'Q8_0':
      return quantizeQ8_0(values);
    case 'Q4_0':
      return quantizeQ4_0(values);
    case 'Q4_K':
    case 'Q6_K':
      throw new FailedPreconditionError(`quantizing to ${type} is not available yet (it comes with the native quantizers)`);
  }
};
