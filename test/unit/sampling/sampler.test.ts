import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InternalError, InvalidArgumentError } from '../../../common/errors';
import { parseSamplingParams, sampleToken, type SamplingParams } from '../../../common/sampling/sampler';

const GREEDY: SamplingParams = { kind: 'greedy' };

function random(overrides: Partial<Extract<SamplingParams, { kind: 'random' }>> = {}): SamplingParams {
  return { kind: 'random', temperature: 1, topK: 0, topP: 1, seed: 7n, ...overrides };
}

/** Deterministic pseudo-random logits (vocab,) in [-scale, scale). */
function logitsFor(vocab: number, seed: number, scale = 5): Float32Array {
  let state = seed;
  return Float32Array.from({ length: vocab }, () => {
    state = (state * 16807) % 2147483647;
    return (state / 2147483647) * 2 * scale - scale;
  });
}

function frequencies(logits: Float32Array, params: SamplingParams, steps: number): number[] {
  const counts = new Array<number>(logits.length).fill(0);
  for (let step = 0; step < steps; step++) counts[sampleToken(logits, params, step)]++;
  return counts.map((c) => c / steps);
}

function assertClose(actual: number[], expected: number[], tolerance: number): void {
  assert.equal(actual.length, expected.length);
  actual.forEach((a, i) => assert.ok(Math.abs(a - expected[i]) <= tolerance, `p[${i}] = ${a}, expected ${expected[i]}`));
}

describe('sampleToken', () => {
  test('greedy is argmax, the lowest id among equal maxima', () => {
    assert.equal(sampleToken(Float32Array.from([0.1, 3, -2, 2.9]), GREEDY, 0), 1);
    assert.equal(sampleToken(Float32Array.from([1, 5, 5, 5]), GREEDY, 9), 1);
    assert.equal(sampleToken(Float32Array.from([-Infinity, -1, -Infinity]), GREEDY, 0), 1);
    const logits = logitsFor(32000, 3);
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
    assert.equal(sampleToken(logits, GREEDY, 0), best);
  });

  test('the same seed and step give the same token; a replay from step n matches', () => {
    const logits = logitsFor(1000, 11, 2);
    const params = random({ seed: 123456789n, temperature: 0.9, topP: 0.95 });
    const run = Array.from({ length: 200 }, (_, step) => sampleToken(logits, params, step));
    const replayFrom100 = Array.from({ length: 100 }, (_, i) => sampleToken(logits, params, 100 + i));
    assert.deepEqual(replayFrom100, run.slice(100));
    // A number seed and the equal bigint seed are the same stream.
    const asNumber = random({ seed: 123456789, temperature: 0.9, topP: 0.95 });
    assert.deepEqual(Array.from({ length: 50 }, (_, step) => sampleToken(logits, asNumber, step)), run.slice(0, 50));
  });

  test('different seeds give different sequences', () => {
    const logits = logitsFor(1000, 5, 1);
    const sequence = (seed: bigint): number[] => Array.from({ length: 100 }, (_, step) => sampleToken(logits, random({ seed }), step));
    const a = sequence(1n);
    const b = sequence(2n);
    assert.notDeepEqual(a, b);
    assert.ok(a.filter((t, i) => t === b[i]).length < 20);
    assert.ok(new Set(a).size > 50, 'a flat distribution should not keep drawing the same tokens');
  });

  test('topK = 1 is greedy, whatever the seed, temperature and topP', () => {
    for (let trial = 0; trial < 20; trial++) {
      const logits = logitsFor(32000, 100 + trial);
      const expected = sampleToken(logits, GREEDY, 0);
      const params = random({ topK: 1, seed: BigInt(trial), temperature: 0.5 + trial / 10, topP: trial % 2 === 0 ? 1 : 0.9 });
      assert.equal(sampleToken(logits, params, trial), expected);
    }
    const tied = Float32Array.from([0, 4, 1, 4]);
    for (let step = 0; step < 20; step++) assert.equal(sampleToken(tied, random({ topK: 1 }), step), 1);
  });

  test('a tiny topP is greedy', () => {
    for (let trial = 0; trial < 20; trial++) {
      const logits = logitsFor(32000, 200 + trial, 3);
      const expected = sampleToken(logits, GREEDY, 0);
      assert.equal(sampleToken(logits, random({ topP: 1e-9, seed: BigInt(trial), temperature: 2 }), trial), expected);
    }
  });

  test('draws follow softmax(logits / temperature), after top-k and top-p', () => {
    const logits = Float32Array.from([Math.log(0.5), Math.log(0.3), Math.log(0.2)]);
    assertClose(frequencies(logits, random(), 20000), [0.5, 0.3, 0.2], 0.02);
    // Temperature 2 takes square roots before renormalising.
    const roots = [0.5, 0.3, 0.2].map(Math.sqrt);
    const rootSum = roots.reduce((a, b) => a + b, 0);
    assertClose(frequencies(logits, random({ temperature: 2, seed: 9n }), 20000), roots.map((r) => r / rootSum), 0.02);
    // topK 2 and topP 0.7 both keep {0, 1}: 0.5 falls short of 0.7, 0.5 + 0.3 reaches it.
    assertClose(frequencies(logits, random({ topK: 2, seed: 10n }), 20000), [0.625, 0.375, 0], 0.02);
    assertClose(frequencies(logits, random({ topP: 0.7, seed: 11n }), 20000), [0.625, 0.375, 0], 0.02);
    assertClose(frequencies(logits, random({ topP: 0.45, seed: 12n }), 5000), [1, 0, 0], 0);
  });

  test('a token with a -Infinity logit is never drawn', () => {
    const logits = Float32Array.from([0, -Infinity, 0, -Infinity]);
    const f = frequencies(logits, random({ topP: 0.99 }), 2000);
    assert.equal(f[1] + f[3], 0);
    assertClose(f, [0.5, 0, 0.5, 0], 0.05);
  });

  test('NaN logits and an empty vector are internal errors; a bad step is an InvalidArgumentError', () => {
    assert.throws(() => sampleToken(Float32Array.from([0, NaN, 1]), GREEDY, 0), InternalError);
    assert.throws(() => sampleToken(Float32Array.from([NaN, 0]), random(), 0), InternalError);
    assert.throws(() => sampleToken(new Float32Array(0), GREEDY, 0), InternalError);
    assert.throws(() => sampleToken(Float32Array.from([1, 2]), random(), -1), InvalidArgumentError);
    assert.throws(() => sampleToken(Float32Array.from([1, 2]), random(), 0.5), InvalidArgumentError);
  });

  test('is fast enough for a 32000-token vocabulary', () => {
    // A budget with a wide margin for loaded CI machines; typical cost is well under 1 ms.
    const logits = logitsFor(32000, 77, 4);
    const cases = [GREEDY, random(), random({ topK: 50 }), random({ topP: 0.9 }), random({ topK: 40, topP: 0.9 })];
    for (const params of cases) {
      const start = process.hrtime.bigint();
      for (let step = 0; step < 50; step++) sampleToken(logits, params, step);
      const perTokenMs = Number(process.hrtime.bigint() - start) / 50 / 1e6;
      const name = JSON.stringify(params, (_, v: unknown) => (typeof v === 'bigint' ? String(v) : v));
      assert.ok(perTokenMs < 20, `${name}: ${perTokenMs} ms per token`);
    }
  });
});

describe('parseSamplingParams', () => {
  test('accepts greedy, and random with defaults and every seed form', () => {
    assert.deepEqual(parseSamplingParams({ kind: 'greedy' }), { kind: 'greedy' });
    assert.deepEqual(parseSamplingParams({ kind: 'random', seed: 5 }), { kind: 'random', temperature: 1, topK: 0, topP: 1, seed: 5n });
    const full = parseSamplingParams({ kind: 'random', temperature: 0.7, topK: 40, topP: 0.9, seed: '18446744073709551615' });
    assert.deepEqual(full, { kind: 'random', temperature: 0.7, topK: 40, topP: 0.9, seed: 18446744073709551615n });
    assert.ok(Object.isFrozen(full));
    assert.equal(parseSamplingParams({ kind: 'random', seed: 3n, topP: 1 }).kind, 'random');
  });

  const invalid: [string, unknown][] = [
    ['not an object', 'greedy'],
    ['null', null],
    ['no kind', { temperature: 1, seed: 1 }],
    ['an unknown kind', { kind: 'beam', seed: 1 }],
    ['an unknown key', { kind: 'random', seed: 1, top_p: 0.9 }],
    ['greedy with parameters', { kind: 'greedy', temperature: 0.5 }],
    ['no seed', { kind: 'random' }],
    ['temperature 0', { kind: 'random', seed: 1, temperature: 0 }],
    ['a negative temperature', { kind: 'random', seed: 1, temperature: -1 }],
    ['a NaN temperature', { kind: 'random', seed: 1, temperature: NaN }],
    ['an infinite temperature', { kind: 'random', seed: 1, temperature: Infinity }],
    ['topP 0', { kind: 'random', seed: 1, topP: 0 }],
    ['topP above 1', { kind: 'random', seed: 1, topP: 1.01 }],
    ['a string topP', { kind: 'random', seed: 1, topP: '0.9' }],
    ['a negative topK', { kind: 'random', seed: 1, topK: -1 }],
    ['a fractional topK', { kind: 'random', seed: 1, topK: 2.5 }],
    ['a negative seed', { kind: 'random', seed: -1 }],
    ['a seed of 2^64', { kind: 'random', seed: 1n << 64n }],
    ['a fractional seed', { kind: 'random', seed: 1.5 }],
    ['a non-decimal seed string', { kind: 'random', seed: '0x10' }],
  ];
  for (const [name, raw] of invalid) {
    test(`rejects ${name} with InvalidArgumentError`, () => {
      assert.throws(() => parseSamplingParams(raw), InvalidArgumentError);
    });
  }

  test('sampleToken rejects hand-built invalid params too', () => {
    const logits = Float32Array.from([1, 2, 3]);
    assert.throws(() => sampleToken(logits, random({ temperature: 0 }), 0), InvalidArgumentError);
    assert.throws(() => sampleToken(logits, random({ seed: -3 }), 0), InvalidArgumentError);
  });
});
