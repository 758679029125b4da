/**
 * validatePlan: the invariants a decoded plan must satisfy, including a hand-over's previous
 * stages (which must cover the model like any stage list, from an older epoch).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { validatePlan } from '../../../common/cluster/plan';

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
