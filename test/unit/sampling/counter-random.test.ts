import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { random64At, uniformAt } from '../../../common/sampling/counter-random';

describe('counter-based random numbers', () => {
  test('are the SplitMix64 sequence (published test vectors)', () => {
    // splitmix64 seeded with 0, and with 1234567, outputs 1, 2, 3.
    assert.equal(random64At(0n, 0), 0xe220a8397b1dcdafn);
    assert.equal(random64At(0n, 1), 0x6e789e6aa1b965f4n);
    assert.equal(random64At(0n, 2), 0x06c45d188009454fn);
    assert.equal(random64At(1234567n, 0), 6457827717110365317n);
    assert.equal(random64At(1234567n, 1), 3203168211198807973n);
  });

  test('depend only on (seed, step): any order of evaluation gives the same numbers', () => {
    const forward = Array.from({ length: 100 }, (_, step) => uniformAt(42n, step));
    const backward = Array.from({ length: 100 }, (_, i) => uniformAt(42n, 99 - i)).reverse();
    assert.deepEqual(backward, forward);
  });

  test('lie in [0, 1) and differ between seeds', () => {
    const a = Array.from({ length: 1000 }, (_, step) => uniformAt(1n, step));
    const b = Array.from({ length: 1000 }, (_, step) => uniformAt(2n, step));
    for (const u of [...a, ...b]) assert.ok(u >= 0 && u < 1, String(u));
    assert.ok(a.filter((u, i) => u === b[i]).length === 0);
    const mean = a.reduce((x, y) => x + y, 0) / a.length;
    assert.ok(Math.abs(mean - 0.5) < 0.05, String(mean));
  });

  test('the largest seed wraps within 64 bits', () => {
    const max = (1n << 64n) - 1n;
    assert.ok(random64At(max, 5) < 1n << 64n);
    assert.ok(uniformAt(max, 5) < 1);
  });
});
