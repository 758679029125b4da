/** Bit-exact comparison of float arrays (a NaN or -0 counts by its bits, unlike assert.deepEqual). */

/** -1 when a and b hold the same bits, else the first index where they differ. */
export function firstBitMismatch(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return i;
  return -1;
}
