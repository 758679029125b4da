/**
 * reconcile: what a worker loads, keeps and retires for a plan, and whether its expert set
 * changes, decided without loading anything.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { validatePlan, type Plan } from '../../../common/cluster/plan';
import { workerId } from '../../../common/ids';
import { reconcile, stageKey, type LoadedState } from '../../../worker/reconcile';

const w1 = workerId('w1');
const range = (start: number, end: number) => ({ start, end });
const key = (start: number, end: number, spread = false) => stageKey('m', range(start, end), spread);

/** Layers [0,2) on w1 (w2 standby), [2,4) on w2 (w1 standby), [4,6) on w3. */
const pipeline = validatePlan({
  epoch: 2,
  modelId: 'm',
  numLayers: 6,
  stages: [
    { range: range(0, 2), workers: ['w1', 'w2'] },
    { range: range(2, 4), workers: ['w2', 'w1'] },
    { range: range(4, 6), workers: ['w3'] },
  ],
});
/** The same stages with 2 experts per layer spread: w1 holds experts 0 of layers 0-5. */
const spread = validatePlan({
  ...pipeline,
  experts: [0, 1, 2, 3, 4, 5].flatMap((layer) => [
    { layer, expert: 0, workers: ['w1', 'w3'] },
    { layer, expert: 1, workers: ['w2'] },
  ]),
});

const nothing: LoadedState = { stages: new Set(), expertsKey: undefined };
const summary = (plan: Plan, loaded: LoadedState) => {
  const r = reconcile(plan, loaded, w1);
  const need = (n: { key: string; index: number; loaded: boolean }) => `${n.index}:${n.key}:${n.loaded ? 'keep' : 'load'}`;
  return { primaries: r.primaries.map(need), standbys: r.standbys.map(need), retire: [...r.retire].sort(), experts: r.experts?.holdings.length ?? 0, expertsChange: r.expertsChange };
};

describe('reconcile', () => {
  test('table: loads, keeps and retires', () => {
    const table: [string, Plan, LoadedState, ReturnType<typeof summary>][] = [
      [
        'nothing loaded: load the primary range, then the standby range',
        pipeline,
        nothing,
        { primaries: [`0:${key(0, 2)}:load`], standbys: [`1:${key(2, 4)}:load`], retire: [], experts: 0, expertsChange: false },
      ],
      [
        'both ranges loaded: keep both',
        pipeline,
        { stages: new Set([key(0, 2), key(2, 4)]), expertsKey: undefined },
        { primaries: [`0:${key(0, 2)}:keep`], standbys: [`1:${key(2, 4)}:keep`], retire: [], experts: 0, expertsChange: false },
      ],
      [
        'a range the plan no longer gives this worker is retired',
        pipeline,
        { stages: new Set([key(0, 2), key(4, 6), key(0, 3)]), expertsKey: undefined },
        { primaries: [`0:${key(0, 2)}:keep`], standbys: [`1:${key(2, 4)}:load`], retire: [key(0, 3), key(4, 6)].sort(), experts: 0, expertsChange: false },
      ],
      [
        'experts spread: the same layers are another engine (loaded without experts); the expert set is new',
        spread,
        { stages: new Set([key(0, 2), key(2, 4)]), expertsKey: undefined },
        { primaries: [`0:${key(0, 2, true)}:load`], standbys: [`1:${key(2, 4, true)}:load`], retire: [key(0, 2), key(2, 4)].sort(), experts: 6, expertsChange: true },
      ],
    ];
    for (const [name, plan, loaded, expected] of table) assert.deepEqual(summary(plan, loaded), expected, name);
  });

  test('the expert set is kept when its holdings are unchanged, and dropped when the plan places none here', () => {
    const first = reconcile(spread, nothing, w1);
    assert.ok(first.experts !== undefined && first.expertsChange);
    const again = reconcile({ ...spread, epoch: 3 }, { stages: new Set(), expertsKey: first.experts.key }, w1);
    assert.equal(again.expertsChange, false, 'same holdings in a later epoch: keep the loaded experts');
    const moved = validatePlan({ ...spread, experts: spread.experts!.map((p) => (p.layer === 5 && p.expert === 0 ? { ...p, workers: ['w3'] } : p)) });
    assert.equal(reconcile(moved, { stages: new Set(), expertsKey: first.experts.key }, w1).expertsChange, true, 'one expert fewer: another set');
    const none = reconcile(pipeline, { stages: new Set(), expertsKey: first.experts.key }, w1);
    assert.equal(none.experts, undefined);
    assert.equal(none.expertsChange, true, 'the loaded set goes');
  });

  test('a worker the plan does not name holds nothing and retires everything', () => {
    const r = reconcile(pipeline, { stages: new Set([key(0, 2)]), expertsKey: undefined }, workerId('w9'));
    assert.deepEqual([r.primaries, r.standbys, r.retire], [[], [], [key(0, 2)]]);
  });
});
