/** waitForRequests (coordinator/graceful-stop.ts): a stopping leader's wait for its running requests. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { waitForRequests } from '../../../coordinator/graceful-stop';

describe('waitForRequests', () => {
  test('resolves with 0 once the running requests have finished, not before', async () => {
    let running = 3;
    const timer = setInterval(() => (running = Math.max(0, running - 1)), 20);
    const startMs = performance.now();
    const left = await waitForRequests({ inFlight: () => running, timeoutMs: 10_000, pollMs: 5 });
    clearInterval(timer);
    assert.equal(left, 0);
    assert.ok(performance.now() - startMs >= 40, 'it waited for the three to finish');
  });

  test('at the timeout, resolves with the number still running', async () => {
    const startMs = performance.now();
    const left = await waitForRequests({ inFlight: () => 2, timeoutMs: 100, pollMs: 10 });
    assert.equal(left, 2);
    assert.ok(performance.now() - startMs >= 99);
  });

  test('nothing running: no wait', async () => {
    const startMs = performance.now();
    assert.equal(await waitForRequests({ inFlight: () => 0, timeoutMs: 10_000 }), 0);
    assert.ok(performance.now() - startMs < 1000);
  });
});
