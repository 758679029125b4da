/**
 * The prefix store on its own: chained keys (a key names the whole prefix, not just its block),
 * the LRU under a byte budget, the list of evicted keys a first stage passes on, and a store
 * that evicts only when told.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PREFIX_BLOCK_TOKENS, PrefixStore, blockBytes, chainKey, rootKey, type PrefixBlock } from '../../../worker/prefix-cache';
import { planRounds } from '../../../worker/prefix-stage';
import { sequenceId } from '../../../common/ids';

function block(key: string, start = 0, floats = 8): PrefixBlock {
  return { key, parent: 'p', start, layers: [{ k: new Float32Array(floats), v: new Float32Array(floats) }] };
}

describe('prefix keys', () => {
  const tokens = Array.from({ length: PREFIX_BLOCK_TOKENS }, (_, i) => i + 1);
  test('a key depends on every earlier block and on the model', () => {
    const root = rootKey('tiny-mistral');
    const a = chainKey(root, tokens);
    assert.equal(chainKey(root, tokens), a, 'deterministic');
    assert.notEqual(chainKey(rootKey('tiny-mixtral'), tokens), a, 'another model');
    const other = chainKey(root, tokens.map((t) => t + 1));
    assert.notEqual(chainKey(a, tokens), chainKey(other, tokens), 'same block after a different prefix');
    assert.notEqual(chainKey(root, [...tokens.slice(0, 15), 99]), a, 'one token changed');
    assert.match(a, /^[0-9a-f]{32}$/);
  });
});

describe('PrefixStore', () => {
  const size = blockBytes(block('x'));
  test('evicts the least recently used blocks beyond the budget and reports them once', () => {
    const store = new PrefixStore(3 * size);
    for (const k of ['a', 'b', 'c']) store.insert(block(k));
    assert.ok(store.use('a') !== undefined); // a is now the most recent: b goes first
    store.insert(block('d'));
    assert.deepEqual(['a', 'b', 'c', 'd'].map((k) => store.has(k)), [true, false, true, true]);
    assert.equal(store.bytes, 3 * size);
    assert.equal(store.stats().evictedBlocks, 1);
    assert.deepEqual(store.takeEvicted(), ['b']);
    assert.deepEqual(store.takeEvicted(), [], 'reported once');
    store.insert(block('d')); // held: a use, not a second copy
    assert.equal(store.bytes, 3 * size);
    store.insert(block('e')); // order was c, a, d: c goes
    store.insert(block('c')); // back in; a goes
    assert.deepEqual(store.takeEvicted().sort(), ['a'], 'c was evicted and is held again: not reported');
    assert.deepEqual(['a', 'c', 'd', 'e'].map((k) => store.has(k)), [false, true, true, true]);
  });

  test('a block over the whole budget is not kept; a store without a budget evicts only when told', () => {
    const small = new PrefixStore(size - 1);
    small.insert(block('a'));
    assert.equal(small.size, 0);
    const follower = new PrefixStore(Infinity);
    for (let i = 0; i < 100; i++) follower.insert(block(`k${i}`));
    assert.equal(follower.size, 100);
    follower.evict(['k1', 'k2', 'missing']);
    assert.equal(follower.size, 98);
    assert.equal(follower.bytes, 98 * size);
    assert.equal(follower.stats().evictedBlocks, 2);
    follower.clear();
    assert.equal(follower.bytes, 0);
  });
});

describe('planRounds (sliding window)', () => {
  const s = (start: number, count: number) => ({ id: sequenceId(`s${start}`), startPosition: start, tokenCount: count });
  test('one round without a window, or when no slice crosses a round end', () => {
    assert.equal(planRounds([s(0, 500)], Infinity).length, 1);
    assert.deepEqual(planRounds([s(3, 10), s(40, 1)], 16), [[{ slice: 0, offset: 0, count: 10 }, { slice: 1, offset: 0, count: 1 }]]);
  });
  test('a slice is cut at every multiple of the round length', () => {
    assert.deepEqual(planRounds([s(10, 30), s(0, 1)], 16), [
      [{ slice: 0, offset: 0, count: 6 }, { slice: 1, offset: 0, count: 1 }],
      [{ slice: 0, offset: 6, count: 16 }],
      [{ slice: 0, offset: 22, count: 8 }],
    ]);
  });
});
