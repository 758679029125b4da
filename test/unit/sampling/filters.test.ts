import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { nucleusCutoff, topKIds } from '../../../common/sampling/candidates';
import { keepNucleus, keepTopK } from '../../../common/sampling/filters';

/** Deterministic pseudo-random logits (vocab,); `levels` > 0 quantises them to force ties. */
function logitsFor(vocab: number, seed: number, scale: number, levels = 0): Float32Array {
  let state = seed;
  return Float32Array.from({ length: vocab }, () => {
    state = (state * 16807) % 2147483647;
    const x = (state / 2147483647) * 2 * scale - scale;
    return levels > 0 ? Math.round(x * levels) / levels : x;
  });
}

/** Reference ranking by full sort: logit descending, then id ascending. */
function ranked(logits: Float32Array): number[] {
  return Array.from(logits.keys()).sort((a, b) => (logits[a] === logits[b] ? a - b : logits[b] - logits[a]));
}

/** Reference filter: sort, cut to k, cut to the shortest prefix holding topP of what is left. */
function referenceKept(logits: Float32Array, topK: number, topP: number, temperature: number): number[] {
  const max = Math.max(...logits);
  let order = ranked(logits);
  if (topK > 0) order = order.slice(0, topK);
  const weights = order.map((id) => Math.exp((logits[id] - max) / temperature));
  const total = weights.reduce((a, b) => a + b, 0);
  let mass = 0;
  let n = order.length;
  if (topP < 1) {
    for (let j = 0; j < weights.length; j++) {
      mass += weights[j];
      if (mass >= topP * total) {
        n = j + 1;
        break;
      }
    }
  }
  return order.slice(0, n).sort((a, b) => a - b);
}

/** The filters' weight: exp((logit - max) / temperature), exactly 0 below e^-64. */
function weight(logit: number, max: number, temperature: number): number {
  const x = (logit - max) * (1 / temperature);
  return x < -64 ? 0 : Math.exp(x);
}

const CASES: { name: string; vocab: number; scale: number; levels: number }[] = [
  { name: 'flat', vocab: 5000, scale: 2, levels: 0 },
  { name: 'wide', vocab: 5000, scale: 30, levels: 0 },
  { name: 'tied', vocab: 5000, scale: 3, levels: 2 },
];

describe('top-k and top-p filters', () => {
  test('topKIds is the first k of the full ranking, ties broken by lower id', () => {
    for (const { vocab, scale, levels } of CASES) {
      const logits = logitsFor(vocab, 3, scale, levels);
      for (const k of [1, 2, 17, 500, vocab - 1]) assert.deepEqual([...topKIds(logits, k)], ranked(logits).slice(0, k));
    }
  });

  test('nucleusCutoff finds the last token of the reference nucleus', () => {
    for (const { vocab, scale, levels } of CASES) {
      const logits = logitsFor(vocab, 5, scale, levels);
      const weights = Float64Array.from(logits, (l) => Math.exp(l));
      const order = ranked(logits);
      for (const fraction of [0.001, 0.3, 0.9, 0.999]) {
        const target = fraction * weights.reduce((a, b) => a + b, 0);
        let mass = 0;
        const expected = order.find((id) => (mass += weights[id]) >= target);
        const ids = Int32Array.from(logits.keys());
        assert.equal(nucleusCutoff(logits, weights, ids, target), expected);
      }
    }
  });

  for (const { name, vocab, scale, levels } of CASES) {
    test(`keepTopK and keepNucleus match a full-sort reference (${name} logits)`, () => {
      for (let trial = 0; trial < 12; trial++) {
        const logits = logitsFor(vocab, 100 + trial, scale, levels);
        const max = Math.max(...logits);
        const temperature = [0.3, 1, 2.5][trial % 3];
        const topP = [0.5, 0.9, 0.99, 1][trial % 4];
        const topK = [1, 40, 1000][trial % 3];
        const nucleus = keepNucleus(logits, topP, max, 1 / temperature);
        assert.deepEqual([...nucleus.ids], referenceKept(logits, 0, topP, temperature), `nucleus, trial ${trial}`);
        const top = keepTopK(logits, topK, topP, max, 1 / temperature);
        assert.deepEqual([...top.ids], referenceKept(logits, topK, topP, temperature), `top-k, trial ${trial}`);
        for (const kept of [nucleus, top]) {
          kept.ids.forEach((id, j) => assert.equal(kept.weights[j], weight(logits[id], max, temperature)));
        }
      }
    });
  }
});
