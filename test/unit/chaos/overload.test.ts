/** S12's waves: 60 requests in all, round-robin over the keys, reference prompts, three 10 MiB text prompts. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { clientKeyNames } from '../../../chaos/chaos-pki';
import { OVERLOAD_REQUESTS, overloadWave } from '../../../chaos/scenarios/overload';
import { makeRequests } from '../../../chaos/workload';

describe('overload waves', () => {
  const keys = clientKeyNames(4);
  const reference = makeRequests(4, 4, 9, 64, 32000, 7);
  const all = Array.from({ length: 10 }, (_, wave) => overloadWave(reference, wave, 6, keys)).flat();

  test('10x (4 running + 2 queued) requests, spread evenly over the keys', () => {
    assert.equal(OVERLOAD_REQUESTS, 60);
    assert.equal(all.length, OVERLOAD_REQUESTS);
    assert.deepEqual(clientKeyNames(4), ['client-1', 'client-2', 'client-3', 'client-4']);
    for (const key of keys) assert.equal(all.filter((r) => r.keyName === key).length, 15, key);
  });

  test('ordinary requests reuse the reference prompts (their oracle); three carry 10 MiB of text', () => {
    const oversized = all.filter((r) => r.promptText !== undefined);
    assert.equal(oversized.length, 3);
    assert.ok(oversized.every((r) => r.promptText!.length === 10 * 1024 * 1024 && r.lane >= 1000));
    for (const r of all.filter((x) => x.promptText === undefined)) assert.deepEqual(r.promptIds, reference[r.lane].promptIds);
  });
});
