import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InvalidArgumentError } from '../../../common/errors';
import { RateWindow } from '../../../common/metrics/rate-window';

describe('RateWindow', () => {
  function windowAt(): { window: RateWindow; clock: { ms: number } } {
    const clock = { ms: 0 };
    return { window: new RateWindow({ windowMs: 10_000, bucketMs: 100, now: () => clock.ms }), clock };
  }

  test('divides the units of the last window by its length in seconds', () => {
    const { window, clock } = windowAt();
    assert.equal(window.perSecond(), 0);
    window.add(50);
    clock.ms = 5_000;
    window.add(30);
    assert.equal(window.perSecond(), 8); // 80 units / 10 s
  });

  test('a bucket drops out exactly when it is a whole window old', () => {
    const { window, clock } = windowAt();
    clock.ms = 50; // bucket 0
    window.add(100);
    clock.ms = 9_999; // bucket 99: bucket 0 is still inside
    assert.equal(window.perSecond(), 10);
    clock.ms = 10_000; // bucket 100: bucket 0 is out
    assert.equal(window.perSecond(), 0);
  });

  test('a reused ring slot forgets its old count', () => {
    const { window, clock } = windowAt();
    window.add(1000); // bucket 0, slot 0
    clock.ms = 10_000; // bucket 100, slot 0 again
    window.add(20);
    assert.equal(window.perSecond(), 2);
    clock.ms = 25_000;
    assert.equal(window.perSecond(), 0);
  });

  test('rejects negative counts and windows that are not whole buckets', () => {
    const { window } = windowAt();
    assert.throws(() => window.add(-1), InvalidArgumentError);
    assert.throws(() => window.add(NaN), InvalidArgumentError);
    assert.throws(() => new RateWindow({ windowMs: 1000, bucketMs: 300 }), InvalidArgumentError);
    assert.throws(() => new RateWindow({ windowMs: 1000, bucketMs: 0 }), InvalidArgumentError);
  });
});
