/**
 * Counter-based random numbers: the number for a generation step is a pure function of
 * (seed, step), with no state carried from one step to the next. A sequence resumed on another
 * node at step n therefore draws exactly the numbers the failed node would have drawn, which is
 * what makes failover token-exact for sampled (not only greedy) generation.
 *
 * The function is SplitMix64 (Steele, Lea & Flood, "Fast splittable pseudorandom number
 * generators", 2014): output number `step + 1` of the generator seeded with `seed`, computed
 * directly as mix64(seed + (step + 1) * GAMMA) instead of by stepping through the sequence.
 */

const MASK_64 = (1n << 64n) - 1n;
/** 2^64 / golden ratio, odd: the SplitMix64 increment. */
const GAMMA = 0x9e3779b97f4a7c15n;
/** 2^-53: scales a 53-bit integer into [0, 1). */
const INV_2_POW_53 = 1 / 2 ** 53;

/** SplitMix64's finaliser: a bijection on 64-bit integers that mixes every input bit. */
function mix64(x: bigint): bigint {
  let z = x;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK_64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK_64;
  return z ^ (z >> 31n);
}

/** The 64-bit output for `step` (0-based) of the stream `seed` (an unsigned 64-bit integer). */
export function random64At(seed: bigint, step: number): bigint {
  return mix64((seed + GAMMA * BigInt(step + 1)) & MASK_64);
}

/** A uniform number in [0, 1) for `step` of the stream `seed`: the top 53 bits of random64At. */
export function uniformAt(seed: bigint, step: number): number {
  return Number(random64At(seed, step) >> 11n) * INV_2_POW_53;
}
