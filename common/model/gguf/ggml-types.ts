/**
 * ggml's tensor type ids as GGUF stores them, and which of them Bora runs: the float formats and
 * the four block-quantized formats of dtype.ts, whose block layouts are ggml's own.
 */
import type { TensorDtype } from '../dtype';

/** ggml_type ids of the formats Bora runs. */
export const GGML_TYPE_ID: Readonly<Record<TensorDtype, number>> = Object.freeze({
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q8_0: 8,
  Q4_K: 12,
  Q6_K: 14,
  BF16: 30,
});

/** Names of every ggml_type id (ggml.h), for errors about the ones Bora cannot run. */
const GGML_TYPE_NAMES: Readonly<Record<number, string>> = Object.freeze({
  0: 'F32', 1: 'F16', 2: 'Q4_0', 3: 'Q4_1', 6: 'Q5_0', 7: 'Q5_1', 8: 'Q8_0', 9: 'Q8_1',
  10: 'Q2_K', 11: 'Q3_K', 12: 'Q4_K', 13: 'Q5_K', 14: 'Q6_K', 15: 'Q8_K',
  16: 'IQ2_XXS', 17: 'IQ2_XS', 18: 'IQ3_XXS', 19: 'IQ1_S', 20: 'IQ4_NL', 21: 'IQ3_S', 22: 'IQ2_S',
  23: 'IQ4_XS', 24: 'I8', 25: 'I16', 26: 'I32', 27: 'I64', 28: 'F64', 29: 'IQ1_M', 30: 'BF16',
  34: 'TQ1_0', 35: 'TQ2_0', 39: 'MXFP4',
});

const DTYPE_OF_ID: ReadonlyMap<number, TensorDtype> = new Map(
  (Object.entries(GGML_TYPE_ID) as [TensorDtype, number][]).map(([dtype, id]) => [id, dtype]),
);

/** The Bora dtype of a ggml type id; undefined for a type Bora cannot run. */
export function dtypeOfGgmlType(id: number): TensorDtype | undefined {
  return DTYPE_OF_ID.get(id);
}

/** "Q5_K (13)", or "unknown type 99" for an id ggml does not define. */
export function ggmlTypeName(id: number): string {
  const name = GGML_TYPE_NAMES[id];
  return name === undefined ? `unknown type ${id}` : `${name} (${id})`;
}

/** llama_ftype ids for general.file_type: what most of the file's matrices are stored as. */
export const FILE_TYPE_ID = Object.freeze({ F32: 0, F16: 1, Q4_0: 2, Q8_0: 7, Q4_K_M: 15, BF16: 32 });
