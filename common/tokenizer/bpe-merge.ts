/**
 * Byte-pair merging of one word. Starting from one symbol per character (or per fallback byte),
 * the adjacent pair whose merge rule has the best (lowest) rank is merged, the leftmost such
 * pair on ties, until no adjacent pair has a rule. This is the order Hugging Face tokenizers
 * and SentencePiece BPE use, so ids match theirs exactly.
 *
 * SentencePiece-style tokenizers do not split text into words (a whole prompt can be one word),
 * so merging runs in O(n log n) with a heap over candidate pairs and a linked list of symbols,
 * not by rescanning the word after every merge.
 */
import { CheckpointError } from '../errors';

interface Candidate {
  readonly rank: number;
  /** Position (original symbol index) of the pair's left symbol. */
  readonly left: number;
  /** pairKey(leftId, rightId) when the candidate was queued; a mismatch later means it is stale. */
  readonly key: number;
}

function before(a: Candidate, b: Candidate): boolean {
  return a.rank < b.rank || (a.rank === b.rank && a.left < b.left);
}

/** Binary min-heap of candidates ordered by (rank, left). */
class CandidateHeap {
  private readonly items: Candidate[] = [];

  get size(): number {
    return this.items.length;
  }

  push(item: Candidate): void {
    const items = this.items;
    let i = items.length;
    items.push(item);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(item, items[parent])) break;
      items[i] = items[parent];
      i = parent;
    }
    items[i] = item;
  }

  pop(): Candidate {
    const items = this.items;
    const top = items[0];
    const last = items.pop() as Candidate;
    if (items.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= items.length) break;
        const child = l + 1 < items.length && before(items[l + 1], items[l]) ? l + 1 : l;
        if (!before(items[child], last)) break;
        items[i] = items[child];
        i = child;
      }
      items[i] = last;
    }
    return top;
  }
}

export class BpeMerges {
  /** pairKey -> rank (index in the merge list). */
  private readonly ranks = new Map<number, number>();
  /** pairKey -> id of the merged piece. */
  private readonly merged = new Map<number, number>();
  /** Larger than every id, so pairKey(l, r) = l * idBase + r is unique and below 2^53. */
  private readonly idBase: number;

  /** `file` names the tokenizer file in errors about rules that refer to unknown pieces. */
  constructor(vocab: ReadonlyMap<string, number>, merges: readonly (readonly [string, string])[], file: string) {
    let maxId = 0;
    for (const id of vocab.values()) maxId = Math.max(maxId, id);
    this.idBase = maxId + 1;
    if (this.idBase * this.idBase > Number.MAX_SAFE_INTEGER) {
      throw new CheckpointError(file, `vocabulary ids up to ${maxId} are too large for pair keys`);
    }
    merges.forEach(([left, right], rank) => {
      const l = vocab.get(left);
      const r = vocab.get(right);
      const m = vocab.get(left + right);
      if (l === undefined || r === undefined || m === undefined) {
        throw new CheckpointError(file, `model.merges[${rank}] "${left} ${right}" refers to a piece not in model.vocab`);
      }
      const key = this.pairKey(l, r);
      // Should a rule repeat, the first (best-ranked) occurrence wins.
      if (!this.ranks.has(key)) {
        this.ranks.set(key, rank);
        this.merged.set(key, m);
      }
    });
  }

  private pairKey(left: number, right: number): number {
    return left * this.idBase + right;
  }

  /** Merges a word given as its initial symbol ids; returns the final ids in order. */
  apply(symbols: readonly number[]): number[] {
    const n = symbols.length;
    if (n < 2) return [...symbols];
    const ids = Int32Array.from(symbols); // ids[i] = -1 once symbol i has been merged into its left neighbour
    const next = new Int32Array(n); // next live position, -1 at the end
    const prev = new Int32Array(n); // previous live position, -1 at the start
    for (let i = 0; i < n; i++) {
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
    }
    const heap = new CandidateHeap();
    const offer = (left: number, right: number): void => {
      const key = this.pairKey(ids[left], ids[right]);
      const rank = this.ranks.get(key);
      if (rank !== undefined) heap.push({ rank, left, key });
    };
    for (let i = 0; i + 1 < n; i++) offer(i, i + 1);

    while (heap.size > 0) {
      const { left, key } = heap.pop();
      const right = next[left];
      if (ids[left] < 0 || right < 0 || this.pairKey(ids[left], ids[right]) !== key) continue; // stale
      ids[left] = this.merged.get(key) as number;
      ids[right] = -1;
      next[left] = next[right];
      if (next[left] >= 0) prev[next[left]] = left;
      if (prev[left] >= 0) offer(prev[left], left);
      if (next[left] >= 0) offer(left, next[left]);
    }

    const out: number[] = [];
    for (let i = 0; i >= 0; i = next[i]) out.push(ids[i]);
    return out;
  }
}
