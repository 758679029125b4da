/** PlanPeers: the workers of the served plan, of the latest plan and of its hand-over's sources. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { validatePlan } from '../../../common/cluster/plan';
import { PlanPeers } from '../../../worker/plan-peers';

const plan = (epoch: number, a: string, b: string, handover?: object) =>
  validatePlan({ epoch, modelId: 'm', numLayers: 2, stages: [{ range: { start: 0, end: 1 }, workers: [a] }, { range: { start: 1, end: 2 }, workers: [b] }], ...(handover === undefined ? {} : { handover }) });

describe('PlanPeers', () => {
  test('the union of the served plan, the latest plan and its hand-over sources', () => {
    const served = plan(1, 'w1', 'w2');
    const latest = plan(2, 'w3', 'w2', { fromEpoch: 1, stages: [{ range: { start: 0, end: 2 }, worker: 'w9' }] });
    const peers = new PlanPeers();
    assert.deepEqual([...peers.of(undefined, undefined)], []);
    assert.deepEqual([...peers.of(served, served)].sort(), ['w1', 'w2']);
    assert.deepEqual([...peers.of(served, latest)].sort(), ['w1', 'w2', 'w3', 'w9']);
    assert.deepEqual([...peers.of(latest, latest)].sort(), ['w2', 'w3', 'w9']);
  });

  test('the same pair of plans gives the same set without recomputing it', () => {
    const served = plan(1, 'w1', 'w2');
    const peers = new PlanPeers();
    const first = peers.of(served, served);
    assert.equal(peers.of(served, served), first);
    assert.notEqual(peers.of(served, plan(2, 'w1', 'w4')), first);
  });
});
