/**
 * tokenLogprobs: log_softmax of the raw logits for the chosen token, and the top alternatives in
 * order (lower id first among equal logits), checked against a direct float64 computation.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { tokenLogprobs } from '../../../common/sampling/logprobs';
import { InvalidArgumentError } from '../../../common/errors';

function direct(logits: Float32Array): number[] {
  const max = Math.max(...logits);
  const logZ = max + Math.log([...logits].reduce((s, v) => s + Math.exp(v - max), 0));
  return [...logits].map((v) => v - logZ);
}

describe('tokenLogprobs', () => {
  test('the chosen token and the top alternatives match log_softmax', () => {
    const logits = new Float32Array(1000).map((_, i) => Math.sin(i * 12.9898) * 8);
    const expected = direct(logits);
    const order = [...expected.keys()].sort((a, b) => expected[b] - expected[a] || a - b);
    const r = tokenLogprobs(logits, 17, 5);
    assert.ok(Math.abs(r.logprob - expected[17]) < 1e-9);
    assert.deepEqual(r.top.map((t) => t.tokenId), order.slice(0, 5));
    for (const t of r.top) assert.ok(Math.abs(t.logprob - expected[t.tokenId]) < 1e-9);
    const total = expected.reduce((s, v) => s + Math.exp(v), 0);
    assert.ok(Math.abs(total - 1) < 1e-9, 'a distribution');
  });

  test('ties keep the lower id first; top 0 gives no alternatives; a bad count is refused', () => {
    const logits = new Float32Array([1, 3, 3, 2]);
    assert.deepEqual(tokenLogprobs(logits, 0, 3).top.map((t) => t.tokenId), [1, 2, 3]);
    assert.deepEqual(tokenLogprobs(logits, 0, 0).top, []);
    assert.throws(() => tokenLogprobs(logits, 0, 21), InvalidArgumentError);
  });
});
