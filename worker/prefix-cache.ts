/**
 * A stage's prefix cache (automatic prefix caching, after vLLM's): the keys and values of full
 * blocks of PREFIX_BLOCK_TOKENS tokens, each keyed by a hash of the whole prefix up to and
 * including the block (a chain: key_j = H(key_{j-1}, tokens of block j), key_{-1} = the root,
 * which names the model). Every stage of a pipeline computes the same keys for the same tokens,
 * which is how a later stage finds the blocks the first stage looked up; each stage's store is
 * its own (one per loaded layer range), so keys need not name the range. A block only ever holds what the stage's
 * own weights computed for exactly that prefix, so any stage may install it into a new sequence
 * and skip its prefill. Blocks live in an LRU under a byte budget.
 *
 * This file is the store; prefix-stage.ts uses it around a StageEngine.
 */
import { createHash } from 'node:crypto';

/** Tokens per block. */
export const PREFIX_BLOCK_TOKENS = 16;

/** One block's keys and values: per layer of the stage, (K, PREFIX_BLOCK_TOKENS, D) each. */
export interface PrefixBlock {
  readonly key: string;
  /** The key of the block before it (the root for the first block). */
  readonly parent: string;
  /** Absolute position of the block's first token. */
  readonly start: number;
  readonly layers: readonly { readonly k: Float32Array; readonly v: Float32Array }[];
}

/** The key of the empty prefix of model `modelTag`. */
export function rootKey(modelTag: string): string {
  return createHash('sha256').update(`bora-prefix-v1\0${modelTag}`).digest('hex').slice(0, 32);
}

/** The key of the prefix ending with `tokens` (one block) after the prefix keyed `parent`. */
export function chainKey(parent: string, tokens: readonly number[]): string {
  const ids = Uint32Array.from(tokens);
  return createHash('sha256').update(parent).update(Buffer.from(ids.buffer, ids.byteOffset, ids.byteLength)).digest('hex').slice(0, 32);
}

export function blockBytes(block: PrefixBlock): number {
  let bytes = 0;
  for (const l of block.layers) bytes += l.k.byteLength + l.v.byteLength;
  return bytes;
}

export interface PrefixCacheStats {
  /** Prompt tokens whose prefill was skipped (their blocks came from the cache). */
  readonly hitTokens: number;
  /** Prompt tokens in full blocks that were looked up and not found (so were computed). */
  readonly missTokens: number;
  readonly blocks: number;
  readonly bytes: number;
  /** Blocks dropped to stay under the budget. */
  readonly evictedBlocks: number;
}

/**
 * The blocks, least recently used first (a Map keeps insertion order; a use re-inserts).
 * `budgetBytes`: the most the blocks may hold together; Infinity for a store that evicts only
 * when told (a later stage, which follows the first stage's evictions, see prefix-stage.ts).
 */
export class PrefixStore {
  private readonly blocks = new Map<string, PrefixBlock & { readonly bytes: number }>();
  private heldBytes = 0;
  /** Keys evicted since the last takeEvicted(). */
  private evictedSince = new Set<string>();
  hitTokens = 0;
  missTokens = 0;
  evictedBlocks = 0;

  constructor(readonly budgetBytes: number) {}

  get bytes(): number {
    return this.heldBytes;
  }

  get size(): number {
    return this.blocks.size;
  }

  has(key: string): boolean {
    return this.blocks.has(key);
  }

  /** The block, marked as just used; undefined when not held. */
  use(key: string): PrefixBlock | undefined {
    const block = this.blocks.get(key);
    if (block === undefined) return undefined;
    this.blocks.delete(key);
    this.blocks.set(key, block);
    return block;
  }

  /**
   * Adds a block (or marks a held one used) and evicts the least recently used ones while over
   * the budget. A block larger than the whole budget is not kept.
   */
  insert(block: PrefixBlock): void {
    if (this.use(block.key) !== undefined) return;
    const bytes = blockBytes(block);
    if (bytes > this.budgetBytes) return;
    this.blocks.set(block.key, { ...block, bytes });
    this.heldBytes += bytes;
    this.evictedSince.delete(block.key);
    for (const [key] of this.blocks) {
      if (this.heldBytes <= this.budgetBytes) break;
      this.remove(key);
      this.evictedBlocks++;
    }
  }

  /** Drops the blocks (the first stage evicted them). */
  evict(keys: readonly string[]): void {
    for (const key of keys) if (this.remove(key)) this.evictedBlocks++;
  }

  private remove(key: string): boolean {
    const block = this.blocks.get(key);
    if (block === undefined) return false;
    this.blocks.delete(key);
    this.heldBytes -= block.bytes;
    this.evictedSince.add(key);
    return true;
  }

  /** Keys evicted since the last call and not held again now. */
  takeEvicted(): string[] {
    const keys = [...this.evictedSince].filter((k) => !this.blocks.has(k));
    this.evictedSince = new Set();
    return keys;
  }

  clear(): void {
    this.blocks.clear();
    this.heldBytes = 0;
    this.evictedSince = new Set();
  }

  stats(): PrefixCacheStats {
    return { hitTokens: this.hitTokens, missTokens: this.missTokens, blocks: this.blocks.size, bytes: this.heldBytes, evictedBlocks: this.evictedBlocks };
  }
}
