/**
 * validatePlan: the invariants a decoded plan must satisfy, including a hand-over's previous
 * stages (which must cover the model like any stage list, from an older epoch).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { sameExperts, samePlacement, validatePlan, type Plan } from '../../../common/cluster/plan';

const base = {
  epoch: 3,
  modelId: 'm',
  numLayers: 4,
  stages: [
    { range: { start: 0, end: 2 }, workers: ['w1', 'w2'] },
    { range: { start: 2, end: 4 }, workers: ['w3'] },
  ],
};
const handover = { fromEpoch: 2, stages: [{ range: { start: 0, end: 3 }, worker: 'w1' }, { range: { start: 3, end: 4 }, worker: 'w4' }] };

describe('validatePlan', () => {
  test('accepts a plan and a plan with a hand-over, and keeps both as given', () => {
    assert.deepEqual(validatePlan(base), base);
    assert.deepEqual(validatePlan({ ...base, handover }), { ...base, handover });
  });

  test('rejects gaps, overlaps, empty or duplicate worker lists and unknown fields', () => {
    const bad: [unknown, RegExp][] = [
      [{ ...base, stages: [base.stages[0], { range: { start: 3, end: 4 }, workers: ['w3'] }] }, /must start at layer 2/],
      [{ ...base, stages: [base.stages[0]] }, /must cover \[0, 4\)/],
      [{ ...base, stages: [{ range: { start: 0, end: 4 }, workers: [] }] }, /at least one worker/],
      [{ ...base, stages: [{ range: { start: 0, end: 4 }, workers: ['w1', 'w1'] }] }, /twice/],
      [{ ...base, epoch: 0 }, /epoch/],
      [{ ...base, extra: 1 }, /unknown field "extra"/],
    ];
    for (const [plan, message] of bad) assert.throws(() => validatePlan(plan), message);
  });

  test('rejects a hand-over from the same or a later epoch, or whose stages do not cover the model', () => {
    const bad: [unknown, RegExp][] = [
      [{ ...base, handover: { ...handover, fromEpoch: 3 } }, /fromEpoch/],
      [{ ...base, handover: { ...handover, stages: [handover.stages[0]] } }, /must cover/],
      [{ ...base, handover: { ...handover, stages: [{ range: { start: 0, end: 4 }, worker: '' }] } }, /bad worker id/],
      [{ ...base, handover: { ...handover, more: true } }, /unknown field "more"/],
    ];
    for (const [plan, message] of bad) assert.throws(() => validatePlan(plan), message);
  });
});

describe('plan equality', () => {
  const raw = {
    ...base,
    experts: [0, 1, 2, 3].flatMap((layer) => [0, 1].map((expert) => ({ layer, expert, workers: layer === 0 && expert === 0 ? ['w1', 'w2'] : [`w${1 + ((layer + expert) % 3)}`] }))),
  };
  const plan = validatePlan(raw);
  const variant = (changes: object): Plan => validatePlan({ ...raw, ...changes });
  const reordered = variant({ experts: [...raw.experts].reverse().map((p) => ({ ...p, workers: [...p.workers].reverse() })) });

  test('samePlacement: the same stages and experts, whatever the order of expert entries and holders', () => {
    const table: [string, Plan, boolean][] = [
      ['itself', plan, true],
      ['another epoch', variant({ epoch: 9 }), true],
      ['experts and holders listed in another order', reordered, true],
      ['a stage with another primary', variant({ stages: [{ ...base.stages[0], workers: ['w2', 'w1'] }, base.stages[1]] }), false],
      ['a stage boundary moved', variant({ stages: [{ ...base.stages[0], range: { start: 0, end: 1 } }, { ...base.stages[1], range: { start: 1, end: 4 } }] }), false],
      ['an expert on another holder', variant({ experts: raw.experts.map((p, i) => (i === 1 ? { ...p, workers: ['w3'] } : p)) }), false],
      ['no experts', variant({ experts: undefined }), false],
    ];
    for (const [name, other, expected] of table) assert.equal(samePlacement(plan, other), expected, name);
  });

  test('sameExperts ignores the stages', () => {
    assert.equal(sameExperts(plan, variant({ stages: [{ range: { start: 0, end: 4 }, workers: ['w9'] }] })), true);
    assert.equal(sameExperts(plan, reordered), true);
    assert.equal(sameExperts(plan, variant({ experts: raw.experts.map((p, i) => (i === 0 ? { ...p, workers: ['w1'] } : p)) })), false);
  });
});
