/**
 * Embeddings from a decoder model: each token's final hidden state through the model's final
 * RMSNorm (the state the LM head reads; what OpenAI-style embedding endpoints over decoder models
 * return), summed over a sequence's tokens on the last stage (sumNormedRows), then averaged and
 * L2-normalised where all of a sequence's chunks have come together (meanL2). Sums travel as
 * float32 rows; the average is taken in float64.
 */

/** Per slice, the sum over its rows of rmsnorm(row) * weight: packed (sum of counts, H) -> (slices, H). */
export function sumNormedRows(hidden: Float32Array, counts: readonly number[], weight: Float32Array, eps: number): Float32Array {
  const H = weight.length;
  const out = new Float32Array(counts.length * H);
  const acc = new Float64Array(H);
  let row = 0;
  counts.forEach((count, s) => {
    acc.fill(0);
    for (let t = 0; t < count; t++, row++) {
      const x = hidden.subarray(row * H, (row + 1) * H);
      let squares = 0;
      for (let i = 0; i < H; i++) squares += x[i] * x[i];
      const scale = 1 / Math.sqrt(squares / H + eps);
      for (let i = 0; i < H; i++) acc[i] += Math.fround(Math.fround(x[i] * scale) * weight[i]);
    }
    for (let i = 0; i < H; i++) out[s * H + i] = acc[i];
  });
  return out;
}

/** The mean of `tokens` rows whose sum is `sum`, scaled to unit L2 norm (a zero vector stays zero). */
export function meanL2(sum: Float64Array, tokens: number): Float32Array {
  let norm = 0;
  for (const v of sum) norm += (v / tokens) ** 2;
  norm = Math.sqrt(norm);
  return Float32Array.from(sum, (v) => (norm === 0 ? 0 : v / tokens / norm));
}
