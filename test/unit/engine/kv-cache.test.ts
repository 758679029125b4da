/**
 * SequenceCache's forward-call protocol (reserve, write the new slots, commit) against append,
 * which other code (KV transfer, prefix caching) keeps using: the same contents and positions,
 * sliding-window shifts included; uncommitted writes stay invisible; and the live storage the
 * native attention reads is the cache's own.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SequenceCache, type CacheSnapshot } from '../../../common/engine/kv-cache';
import { seededValues } from '../../support/kernels';

const LAYERS = 2;
const K = 2;
const D = 4;

/** Per-layer (B=1, K, T, D) keys and values for `count` tokens. */
function step(count: number, seed: number): { k: Float32Array[]; v: Float32Array[] } {
  return {
    k: Array.from({ length: LAYERS }, (_, l) => seededValues(K * count * D, seed * 10 + l)),
    v: Array.from({ length: LAYERS }, (_, l) => seededValues(K * count * D, seed * 10 + l + 5)),
  };
}

function sameSnapshot(a: CacheSnapshot, b: CacheSnapshot, what: string): void {
  assert.equal(a.nextPosition, b.nextPosition, `${what}: next position`);
  assert.deepEqual([...a.positions], [...b.positions], `${what}: positions`);
  a.layers.forEach((l, i) => {
    assert.deepEqual(l.k, b.layers[i].k, `${what}: layer ${i} keys`);
    assert.deepEqual(l.v, b.layers[i].v, `${what}: layer ${i} values`);
  });
}

describe('SequenceCache', () => {
  for (const keep of [Infinity, 5]) {
    test(`reserve + writeNew + commit equals append (keep ${keep} slots)`, () => {
      const viaAppend = new SequenceCache(LAYERS, K, D, keep, 2);
      const viaCommit = new SequenceCache(LAYERS, K, D, keep, 2);
      for (const [i, count] of [3, 1, 1, 7, 2, 1].entries()) {
        const { k, v } = step(count, i);
        viaAppend.append(k, v, 0, count, count);
        viaCommit.reserve(count);
        for (let l = 0; l < LAYERS; l++) viaCommit.writeNew(l, k[l], v[l], 0, count, count);
        viaCommit.commit(count);
        sameSnapshot(viaCommit.snapshot(0, LAYERS), viaAppend.snapshot(0, LAYERS), `after step ${i}`);
      }
      assert.equal(viaCommit.nextPosition, 15);
      assert.equal(viaCommit.length, Math.min(15, keep));
    });
  }

  test('slots written but not committed are invisible, and the live storage is the cache own', () => {
    const cache = new SequenceCache(LAYERS, K, D, Infinity, 2);
    const first = step(3, 1);
    cache.append(first.k, first.v, 0, 3, 3);
    const before = cache.snapshot(0, LAYERS);
    cache.reserve(4);
    const second = step(4, 2);
    for (let l = 0; l < LAYERS; l++) cache.writeNew(l, second.k[l], second.v[l], 0, 4, 4);
    sameSnapshot(cache.snapshot(0, LAYERS), before, 'uncommitted');
    assert.equal(cache.length, 3);

    // A forward call's attention reads the storage in place: slot s of head h at (h * capacity + s) * D.
    const storage = cache.layerStorage(1);
    assert.ok(storage.capacity >= 7);
    assert.deepEqual([...storage.positions.subarray(0, 3)], [0, 1, 2]);
    assert.deepEqual(storage.k.subarray((storage.capacity + 3) * D, (storage.capacity + 4) * D), second.k[1].subarray(4 * D, 5 * D), 'head 1, first new slot');
    cache.commit(4);
    assert.deepEqual([...cache.snapshot(0, LAYERS).positions], [0, 1, 2, 3, 4, 5, 6]);
  });

  test('writing or committing past the reserved room is refused', () => {
    const cache = new SequenceCache(1, K, D, Infinity, 2);
    const { k, v } = step(3, 3);
    assert.throws(() => cache.writeNew(0, k[0], v[0], 0, 3, 3), RangeError);
    assert.throws(() => cache.commit(3), RangeError);
    assert.equal(cache.length, 0);
  });
});
