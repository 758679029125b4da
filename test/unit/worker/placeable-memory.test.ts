/**
 * A worker's prefix cache is carved out of its memory budget: placement sees the rest, so weights,
 * KV and the prefix cache together stay within --memory-bytes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from '../../../common/errors';
import { placeableMemoryBytes } from '../../../worker/worker-node';

test('placement is offered the budget less the prefix cache', () => {
  assert.equal(placeableMemoryBytes(8 * 2 ** 30, 0), 8 * 2 ** 30);
  assert.equal(placeableMemoryBytes(8 * 2 ** 30, 2 ** 30), 7 * 2 ** 30);
});

test('a prefix cache as large as the whole budget is refused, naming both flags', () => {
  assert.throws(() => placeableMemoryBytes(2 ** 30, 2 ** 30), (err: unknown) =>
    err instanceof InvalidArgumentError && /--prefix-cache-bytes/.test(err.message) && /--memory-bytes/.test(err.message));
  assert.throws(() => placeableMemoryBytes(2 ** 30, 2 ** 31), InvalidArgumentError);
});
