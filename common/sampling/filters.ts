/**
 * Top-k and top-p filters: which tokens a random draw may pick, and with what weight.
 *
 * Weights are unnormalised probabilities, exp((logit - max) / temperature) in float64, so the
 * top token weighs 1. Membership follows the rank order of candidates.ts (logit, then token id);
 * the kept tokens are returned in increasing token id, the order the draw walks them in.
 */
import { keptBy, nucleusCutoff, nucleusLength, topKIds } from './candidates';

/** The tokens a filter keeps, in increasing token id; weights[j] is the weight of ids[j]. */
export interface Kept {
  readonly ids: Int32Array;
  readonly weights: Float64Array;
}

/**
 * A scaled logit below this gives a weight under e^-64 (~1.6e-28 against the top token's 1), far
 * below the float64 resolution of the total; it is taken as exactly 0 rather than computed.
 */
const MIN_EXPONENT = -64;

function weight(logit: number, max: number, invTemperature: number): number {
  const x = (logit - max) * invTemperature;
  return x < MIN_EXPONENT ? 0 : Math.exp(x);
}

function weighIds(logits: Float32Array, ids: Int32Array, max: number, invTemperature: number): Float64Array {
  const weights = new Float64Array(ids.length);
  for (let j = 0; j < ids.length; j++) weights[j] = weight(logits[ids[j]], max, invTemperature);
  return weights;
}

/** Top-k (0 < topK < vocab), then top-p over the renormalised k; reads the vocabulary once. */
export function keepTopK(logits: Float32Array, topK: number, topP: number, max: number, invTemperature: number): Kept {
  const ranked = topKIds(logits, topK); // rank order
  let n = ranked.length;
  if (topP < 1) {
    const weights = weighIds(logits, ranked, max, invTemperature);
    let total = 0;
    for (let j = 0; j < weights.length; j++) total += weights[j];
    n = nucleusLength(weights, topP * total);
  }
  const ids = ranked.slice(0, n).sort();
  return { ids, weights: weighIds(logits, ids, max, invTemperature) };
}

/*
 * Top-p over the whole vocabulary, without sorting it. Tokens are bucketed by scaled logit
 * x = (logit - max) / temperature: bucket b holds -x in [b, b + 1) / BUCKETS_PER_UNIT, and
 * ZERO_BUCKET the tokens of weight 0. Buckets follow rank order, so the nucleus is every bucket
 * before the one where the running mass reaches the target, plus the rank-order prefix of that
 * edge bucket that covers the rest, found by quickselect among the edge bucket's members only.
 */
const BUCKETS_PER_UNIT = 4;
const ZERO_BUCKET = -MIN_EXPONENT * BUCKETS_PER_UNIT + 1;

/** Fills weightOf, bucketOf (vocab,) and bucketMass (ZERO_BUCKET + 1,); returns the total weight. */
function weighIntoBuckets(
  logits: Float32Array,
  max: number,
  invTemperature: number,
  weightOf: Float64Array,
  bucketOf: Uint16Array,
  bucketMass: Float64Array,
): number {
  let total = 0;
  for (let i = 0; i < logits.length; i++) {
    const x = (logits[i] - max) * invTemperature;
    // x <= 0, so truncation (| 0) is floor, and it folds -0 into 0.
    const b = x < MIN_EXPONENT ? ZERO_BUCKET : (-x * BUCKETS_PER_UNIT) | 0;
    const w = b === ZERO_BUCKET ? 0 : Math.exp(x);
    weightOf[i] = w;
    bucketOf[i] = b;
    bucketMass[b] += w;
    total += w;
  }
  return total;
}

/** Ids of the tokens in `bucket`, increasing. */
function membersOf(bucketOf: Uint16Array, bucket: number): Int32Array {
  let count = 0;
  for (let i = 0; i < bucketOf.length; i++) if (bucketOf[i] === bucket) count++;
  const ids = new Int32Array(count);
  for (let i = 0, j = 0; i < bucketOf.length; i++) if (bucketOf[i] === bucket) ids[j++] = i;
  return ids;
}

/**
 * The tokens in buckets before `edge`, and those in `edge` that `cutoff` keeps (none when
 * cutoff is -1), increasing, with their weights.
 */
function collectNucleus(logits: Float32Array, weightOf: Float64Array, bucketOf: Uint16Array, edge: number, cutoff: number): Kept {
  let count = 0;
  for (let i = 0; i < bucketOf.length; i++) if (bucketOf[i] <= edge) count++;
  const ids = new Int32Array(count);
  let j = 0;
  for (let i = 0; i < bucketOf.length; i++) {
    const b = bucketOf[i];
    if (b < edge || (b === edge && cutoff >= 0 && keptBy(logits, i, cutoff))) ids[j++] = i;
  }
  const kept = ids.subarray(0, j);
  const weights = new Float64Array(j);
  for (let k = 0; k < j; k++) weights[k] = weightOf[kept[k]];
  return { ids: kept, weights };
}

/** Top-p over the whole vocabulary; every token when topP is 1. */
export function keepNucleus(logits: Float32Array, topP: number, max: number, invTemperature: number): Kept {
  const vocab = logits.length;
  if (topP >= 1) {
    const ids = new Int32Array(vocab);
    const weights = new Float64Array(vocab);
    for (let i = 0; i < vocab; i++) {
      ids[i] = i;
      weights[i] = weight(logits[i], max, invTemperature);
    }
    return { ids, weights };
  }
  const weightOf = new Float64Array(vocab); // (vocab,)
  const bucketOf = new Uint16Array(vocab); // (vocab,)
  const bucketMass = new Float64Array(ZERO_BUCKET + 1);
  const target = topP * weighIntoBuckets(logits, max, invTemperature, weightOf, bucketOf, bucketMass);
  let before = 0; // mass of the buckets ahead of `edge`
  let edge = 0; // the bucket in which the nucleus ends
  while (edge < ZERO_BUCKET && before + bucketMass[edge] < target) before += bucketMass[edge++];
  const members = membersOf(bucketOf, edge);
  // No members only when rounding carried `edge` onto an empty ZERO_BUCKET: keep the buckets before it.
  const cutoff = members.length === 0 ? -1 : nucleusCutoff(logits, weightOf, members, target - before);
  return collectNucleus(logits, weightOf, bucketOf, edge, cutoff);
}
