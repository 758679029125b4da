/**
 * The token embedding table, kept in its stored dtype (bf16 halves the memory of a float32 copy)
 * and widened to float32 one row at a time as tokens are looked up.
 */
import { InvalidArgumentError } from '../errors';
import type { RawTensor } from '../model/checkpoint';
import { rowBytes, toFloat32 } from '../model/dtype';

export class EmbeddingTable {
  private readonly rowBytes: number;

  constructor(
    private readonly raw: RawTensor, // (V, H)
    readonly vocabSize: number,
    readonly hiddenSize: number,
  ) {
    const bytes = rowBytes(raw.dtype, hiddenSize);
    if (bytes === undefined) throw new InvalidArgumentError(`an embedding row of ${hiddenSize} values is not whole ${raw.dtype} blocks`);
    this.rowBytes = bytes;
  }

  /** (tokens, H) float32 rows for the given ids. */
  lookup(ids: readonly number[]): Float32Array {
    const out = new Float32Array(ids.length * this.hiddenSize);
    ids.forEach((id, i) => {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new InvalidArgumentError(`token id ${id} is outside the vocabulary [0, ${this.vocabSize})`);
      }
      const row = this.raw.bytes.subarray(id * this.rowBytes, (id + 1) * this.rowBytes);
      out.set(toFloat32(row, this.raw.dtype), i * this.hiddenSize);
    });
    return out;
  }
}
