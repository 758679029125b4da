/**
 * Candidate selection over a logits vector (vocab,) without sorting the vocabulary.
 *
 * Tokens are ranked by logit, highest first, and by token id, lowest first, among equal logits:
 * a strict total order. Top-k and top-p both keep a prefix of that ranking, so each is described
 * by its cutoff: the last token kept. A token is kept when it ranks at or before the cutoff.
 */

/** True when token a ranks strictly before token b. */
export function ranksBefore(logits: Float32Array, a: number, b: number): boolean {
  return logits[a] > logits[b] || (logits[a] === logits[b] && a < b);
}

/** True when token `id` is kept by a filter whose last kept token is `cutoff`. */
export function keptBy(logits: Float32Array, id: number, cutoff: number): boolean {
  return logits[id] > logits[cutoff] || (logits[id] === logits[cutoff] && id <= cutoff);
}

function sortByRank(logits: Float32Array, ids: Int32Array): Int32Array {
  return ids.sort((a, b) => (logits[a] === logits[b] ? a - b : logits[b] - logits[a]));
}

/**
 * The k best-ranked token ids, in rank order; 0 < k < logits.length. O(vocab log k): a
 * min-heap of the k best so far, whose root is the worst of them.
 */
export function topKIds(logits: Float32Array, k: number): Int32Array {
  const heap = new Int32Array(k); // token ids; heap[0] ranks after every other entry
  const worse = (a: number, b: number): boolean => ranksBefore(logits, b, a);
  const siftDown = (start: number): void => {
    let i = start;
    const id = heap[i];
    for (;;) {
      const l = 2 * i + 1;
      if (l >= k) break;
      const child = l + 1 < k && worse(heap[l + 1], heap[l]) ? l + 1 : l;
      if (!worse(heap[child], id)) break;
      heap[i] = heap[child];
      i = child;
    }
    heap[i] = id;
  };
  for (let i = 0; i < k; i++) heap[i] = i;
  for (let i = (k >> 1) - 1; i >= 0; i--) siftDown(i);
  for (let id = k; id < logits.length; id++) {
    // Ids arrive in increasing order, so an equal logit never beats the root: strict > suffices.
    if (logits[id] > logits[heap[0]]) {
      heap[0] = id;
      siftDown(0);
    }
  }
  return sortByRank(logits, heap);
}

/**
 * Nucleus cut over tokens already in rank order: the number of leading tokens whose weights
 * (unnormalised probabilities) first reach `target`. At least 1; all if rounding keeps the
 * running sum just short of the target.
 */
export function nucleusLength(weights: Float64Array, target: number): number {
  let mass = 0;
  for (let i = 0; i < weights.length; i++) {
    mass += weights[i];
    if (mass >= target) return i + 1;
  }
  return weights.length;
}

/** Ranges at most this long are finished by sorting. */
const SORT_BELOW = 16;
/** Partition rounds before the rest is sorted outright (guards quickselect's quadratic case). */
const MAX_ROUNDS = 64;

/**
 * Nucleus cut over unordered tokens: the cutoff of the shortest rank-order prefix of `ids` whose
 * weights (`weightOf[id]`, unnormalised) reach `target`. Quickselect by mass, expected O(n):
 * partition around a pivot; if the tokens ranked before it already hold the target, the cut
 * lies among them, otherwise they are all kept and the search goes on after the pivot.
 * Permutes `ids`, deterministically (fixed pivot rule), so every node finds the same cutoff.
 */
export function nucleusCutoff(logits: Float32Array, weightOf: Float64Array, ids: Int32Array, target: number): number {
  let lo = 0; // ids[0, lo) are kept; ids[lo, hi) are undecided; ids[hi, ...) are dropped
  let hi = ids.length;
  let need = target; // mass still to be covered from ids[lo, hi)
  const swap = (i: number, j: number): void => {
    const t = ids[i];
    ids[i] = ids[j];
    ids[j] = t;
  };
  for (let round = 0; hi - lo > SORT_BELOW && round < MAX_ROUNDS; round++) {
    // Median of first, middle and last as the pivot, moved to hi - 1.
    const mid = lo + ((hi - lo) >> 1);
    if (ranksBefore(logits, ids[mid], ids[lo])) swap(mid, lo);
    if (ranksBefore(logits, ids[hi - 1], ids[lo])) swap(hi - 1, lo);
    if (ranksBefore(logits, ids[mid], ids[hi - 1])) swap(mid, hi - 1);
    const pivot = ids[hi - 1];
    let store = lo;
    let massBefore = 0;
    for (let j = lo; j < hi - 1; j++) {
      if (ranksBefore(logits, ids[j], pivot)) {
        massBefore += weightOf[ids[j]];
        swap(store++, j);
      }
    }
    swap(store, hi - 1); // the pivot now sits at `store`
    if (massBefore >= need) {
      hi = store;
    } else if (massBefore + weightOf[pivot] >= need) {
      return pivot;
    } else {
      need -= massBefore + weightOf[pivot];
      lo = store + 1;
    }
  }
  const rest = sortByRank(logits, ids.subarray(lo, hi));
  let mass = 0;
  for (let j = 0; j < rest.length; j++) {
    mass += weightOf[rest[j]];
    if (mass >= need) return rest[j];
  }
  // Only rounding can leave `need` uncovered: keep every token not dropped, up to the worst-ranked.
  let last = ids[0];
  for (let j = 1; j < hi; j++) if (ranksBefore(logits, last, ids[j])) last = ids[j];
  return last;
}
