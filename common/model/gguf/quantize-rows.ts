/**
 * The quantizer the GGUF writer calls: one function from float32 rows to a quantized format's
 * blocks. Where the native kernels are built (the default) it is their multi-threaded row
 * quantizer (common/kernels/quant-encode.c); otherwise the TypeScript reference quantizers of
 * quant-formats.ts, which write the same blocks for Q8_0 and Q4_0 and the same format for the
 * K-quants, much more slowly.
 */
import { availableParallelism } from 'node:os';
import { InvalidArgumentError } from '../../errors';
import { nativeKernels, quantizeRows } from '../../kernels/native-kernels';
import { bf16ToF32, QUANT_BLOCK, type QuantDtype } from '../dtype';
import { quantize } from '../quant-formats';

/**
 * `values` holds `rows` x `cols` values, row-major: float32, or bf16 bits (a Uint16Array), which
 * the native quantizers widen row by row (no float32 copy of the tensor); returns the rows'
 * blocks, row by row.
 */
export type QuantizeRows = (type: QuantDtype, values: Float32Array | Uint16Array, rows: number, cols: number) => Uint8Array;

function checkShape(type: QuantDtype, values: Float32Array | Uint16Array, rows: number, cols: number): void {
  if (values.length !== rows * cols) throw new InvalidArgumentError(`quantize: ${values.length} values are not ${rows} x ${cols}`);
  if (cols % QUANT_BLOCK[type].elements !== 0) throw new InvalidArgumentError(`quantize: rows of ${cols} values are not whole ${type} blocks`);
}

/** The TypeScript reference quantizers (quant-formats.ts). */
export const quantizeRowsTs: QuantizeRows = (type, values, rows, cols) => {
  checkShape(type, values, rows, cols);
  return quantize(values instanceof Uint16Array ? bf16ToF32(values) : values, type);
};

/** The native quantizers on `threads` threads (all cores by default); the TypeScript ones without a native build. */
export function defaultQuantizeRows(threads = availableParallelism()): QuantizeRows {
  const kernels = nativeKernels();
  if (kernels === undefined) return quantizeRowsTs;
  return (type, values, rows, cols) => {
    checkShape(type, values, rows, cols);
    return quantizeRows(kernels, type, values, rows, threads);
  };
}
