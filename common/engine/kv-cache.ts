/**
 * Per-sequence key/value cache of one stage. Every layer of the stage caches the same positions,
 * so positions are kept once per sequence. With a sliding window the cache keeps only the entries
 * a future query can still see (the last window - 1), shifting older ones out.
 *
 * A forward call reserves room for its new tokens, lets each layer's attention read the storage
 * in place and write the new keys and values after the valid slots, and commits them only once
 * every layer succeeded (so a failed call leaves the valid slots as they were).
 */

/** Cached keys and values of one layer: (K, capacity, D) each, first `length` slots valid. */
interface LayerEntries {
  k: Float32Array;
  v: Float32Array;
}

/**
 * A sequence's cache for some consecutive layers, as it moves to another stage at a planned
 * hand-over (instead of being recomputed by replaying the sequence).
 */
export interface CacheSnapshot {
  /** Position the sequence's next token will have. */
  readonly nextPosition: number;
  /** Absolute position of each cached slot, (length,). */
  readonly positions: Int32Array;
  /** One entry per layer: keys and values (K, length, D) each. */
  readonly layers: readonly { readonly k: Float32Array; readonly v: Float32Array }[];
}

export class SequenceCache {
  /** Absolute position of each cached slot, (capacity,). */
  private positions: Int32Array;
  private layers: LayerEntries[];
  private capacity: number;
  /** Valid slots. */
  length = 0;
  /** Position the next token of this sequence will have (tokens seen so far). */
  nextPosition = 0;

  constructor(
    private readonly layerCount: number,
    private readonly kvHeads: number,
    private readonly headDim: number,
    /** Keep at most this many slots (window - 1), or Infinity. */
    private readonly keepSlots: number,
    initialCapacity = 16,
  ) {
    this.capacity = initialCapacity;
    this.positions = new Int32Array(initialCapacity);
    this.layers = Array.from({ length: layerCount }, () => this.allocLayer(initialCapacity));
  }

  private allocLayer(capacity: number): LayerEntries {
    const size = this.kvHeads * capacity * this.headDim;
    return { k: new Float32Array(size), v: new Float32Array(size) };
  }

  get bytes(): number {
    return this.layerCount * 2 * this.kvHeads * this.capacity * this.headDim * 4 + this.capacity * 4;
  }

  positionAt(slot: number): number {
    return this.positions[slot];
  }

  /**
   * Copies slots [0, length) of `layer` into out (B, K, P, D) at batch row b (P = paddedSlots).
   */
  copyInto(layer: number, outK: Float32Array, outV: Float32Array, b: number, paddedSlots: number): void {
    const { k, v } = this.layers[layer];
    const D = this.headDim;
    const rowElems = this.length * D;
    for (let h = 0; h < this.kvHeads; h++) {
      const src = h * this.capacity * D;
      const dst = (b * this.kvHeads + h) * paddedSlots * D;
      outK.set(k.subarray(src, src + rowElems), dst);
      outV.set(v.subarray(src, src + rowElems), dst);
    }
  }

  /**
   * Appends `count` new positions starting at nextPosition. newK/newV are the stage's per-layer
   * outputs (B, K, T, D); this sequence is batch row b.
   */
  append(newK: readonly Float32Array[], newV: readonly Float32Array[], b: number, paddedTokens: number, count: number): void {
    this.reserve(count);
    for (let layer = 0; layer < this.layerCount; layer++) this.writeNew(layer, newK[layer], newV[layer], b, paddedTokens, count);
    this.commit(count);
  }

  /**
   * Makes room for `count` more slots, so that a forward call can write its new keys and values
   * into the storage (layerStorage) before committing them. Changes no valid slot.
   */
  reserve(count: number): void {
    this.ensureRoom(count);
  }

  /**
   * The live storage of one layer, for attention to read in place and write this call's keys and
   * values into slots [length, length + count) after reserve(count): k and v are (K, capacity, D),
   * positions (capacity,) with the first `length` valid. Valid until the next reserve, append,
   * commit or restore.
   */
  layerStorage(layer: number): { readonly k: Float32Array; readonly v: Float32Array; readonly positions: Int32Array; readonly capacity: number } {
    const { k, v } = this.layers[layer];
    return { k, v, positions: this.positions, capacity: this.capacity };
  }

  /**
   * Writes `count` new keys and values of one layer into slots [length, length + count) without
   * committing them; newK/newV are (B, K, T, D), this sequence batch row b. Needs reserve(count).
   */
  writeNew(layer: number, newK: Float32Array, newV: Float32Array, b: number, paddedTokens: number, count: number): void {
    if (this.length + count > this.capacity) throw new RangeError(`writeNew: ${count} slots after ${this.length} exceed the reserved ${this.capacity}`);
    const D = this.headDim;
    const { k, v } = this.layers[layer];
    for (let h = 0; h < this.kvHeads; h++) {
      const src = (b * this.kvHeads + h) * paddedTokens * D;
      const dst = (h * this.capacity + this.length) * D;
      k.set(newK.subarray(src, src + count * D), dst);
      v.set(newV.subarray(src, src + count * D), dst);
    }
  }

  /**
   * Makes the `count` slots after `length`, written in every layer (writeNew or in place), valid
   * at positions nextPosition onwards.
   */
  commit(count: number): void {
    if (this.length + count > this.capacity) throw new RangeError(`commit: ${count} slots after ${this.length} exceed the reserved ${this.capacity}`);
    for (let t = 0; t < count; t++) this.positions[this.length + t] = this.nextPosition + t;
    this.length += count;
    this.nextPosition += count;
    this.dropInvisible();
  }

  /** Copies out layers [from, to) of this stage (indices within the stage). */
  snapshot(from: number, to: number): CacheSnapshot {
    const D = this.headDim;
    const rowElems = this.length * D;
    const layers = this.layers.slice(from, to).map(({ k, v }) => {
      const outK = new Float32Array(this.kvHeads * rowElems);
      const outV = new Float32Array(this.kvHeads * rowElems);
      for (let h = 0; h < this.kvHeads; h++) {
        outK.set(k.subarray(h * this.capacity * D, h * this.capacity * D + rowElems), h * rowElems);
        outV.set(v.subarray(h * this.capacity * D, h * this.capacity * D + rowElems), h * rowElems);
      }
      return { k: outK, v: outV };
    });
    return { nextPosition: this.nextPosition, positions: this.positions.slice(0, this.length), layers };
  }

  /**
   * Writes a snapshot's layers at `offset` (within the stage). The first snapshot sets the
   * positions; every further one must agree with them, since all layers of a stage cache the
   * same positions. Returns false (and changes nothing) when it does not.
   */
  restore(offset: number, snap: CacheSnapshot): boolean {
    const length = snap.positions.length;
    const D = this.headDim;
    if (offset < 0 || offset + snap.layers.length > this.layerCount) return false;
    if (snap.layers.some((l) => l.k.length !== this.kvHeads * length * D || l.v.length !== this.kvHeads * length * D)) return false;
    if (this.length === 0 && this.nextPosition === 0) {
      this.ensureRoom(length);
      this.positions.set(snap.positions);
      this.length = length;
      this.nextPosition = snap.nextPosition;
    } else if (this.nextPosition !== snap.nextPosition || this.length !== length || snap.positions.some((p, i) => p !== this.positions[i])) {
      return false;
    }
    snap.layers.forEach(({ k, v }, i) => {
      const entries = this.layers[offset + i];
      for (let h = 0; h < this.kvHeads; h++) {
        entries.k.set(k.subarray(h * length * D, (h + 1) * length * D), h * this.capacity * D);
        entries.v.set(v.subarray(h * length * D, (h + 1) * length * D), h * this.capacity * D);
      }
    });
    return true;
  }

  /** Makes room for `count` more slots, first by dropping slots no query can see, then by growing. */
  private ensureRoom(count: number): void {
    if (this.length + count <= this.capacity) return;
    const capacity = Math.max(this.length + count, this.capacity * 2);
    const positions = new Int32Array(capacity);
    positions.set(this.positions.subarray(0, this.length));
    const D = this.headDim;
    this.layers = this.layers.map(({ k, v }) => {
      const grown = this.allocLayer(capacity);
      for (let h = 0; h < this.kvHeads; h++) {
        grown.k.set(k.subarray(h * this.capacity * D, (h * this.capacity + this.length) * D), h * capacity * D);
        grown.v.set(v.subarray(h * this.capacity * D, (h * this.capacity + this.length) * D), h * capacity * D);
      }
      return grown;
    });
    this.positions = positions;
    this.capacity = capacity;
  }

  /** Sliding window: keep only the last keepSlots entries. */
  private dropInvisible(): void {
    const drop = this.length - this.keepSlots;
    if (drop <= 0) return;
    const D = this.headDim;
    for (const { k, v } of this.layers) {
      for (let h = 0; h < this.kvHeads; h++) {
        const base = h * this.capacity * D;
        k.copyWithin(base, base + drop * D, base + this.length * D);
        v.copyWithin(base, base + drop * D, base + this.length * D);
      }
    }
    this.positions.copyWithin(0, drop, this.length);
    this.length -= drop;
  }
}
