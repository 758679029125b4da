/**
 * The coordinator's routing-load window: deltas of the workers' cumulative counts (restarts,
 * workers that did not answer, several workers), and the decision to re-plan, fed through
 * planPlacement as the coordinator does.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MemberInfo } from '../../../common/cluster/member';
import { workerId } from '../../../common/ids';
import { MIN_TOKENS_PER_EXPERT, loadDelta, nextBaseline, shouldRebalance, significant, type RoutingCounts } from '../../../coordinator/expert-load';
import { type ExpertLoad, type ModelFootprint, planPlacement } from '../../../coordinator/placement';

const MiB = 1 << 20;
const e = (layer: number, expert: number, tokens: number): ExpertLoad => ({ layer, expert, tokens });
const counts = (entries: Record<string, ExpertLoad[]>): RoutingCounts => new Map(Object.entries(entries));

describe('loadDelta', () => {
  it('sums what each worker routed since the previous collection, zeros left out, in layer order', () => {
    const previous = counts({ w1: [e(0, 1, 10), e(0, 2, 5)], w2: [e(1, 0, 7)] });
    const current = counts({ w2: [e(1, 0, 9), e(1, 3, 4)], w1: [e(0, 2, 5), e(0, 1, 30)] });
    assert.deepEqual(loadDelta(previous, current), [e(0, 1, 20), e(1, 0, 2), e(1, 3, 4)]);
  });

  it('counts a new worker from zero, and all of a restarted one (a count went down or vanished)', () => {
    const previous = counts({ w1: [e(0, 0, 100), e(0, 1, 50)], w2: [e(0, 0, 8), e(0, 1, 8)] });
    const current = counts({ w1: [e(0, 0, 3), e(0, 1, 60)], w2: [e(0, 1, 9)], w3: [e(0, 0, 6)] });
    // w1 restarted (100 -> 3): 3 + 60; w2 lost its (0, 0) entry: restarted too, 9; w3 is new: 6.
    assert.deepEqual(loadDelta(previous, current), [e(0, 0, 9), e(0, 1, 69)]);
  });

  it('adds workers routing the same expert (a layer served by a standby after a failover)', () => {
    assert.deepEqual(loadDelta(new Map(), counts({ a: [e(2, 3, 4)], b: [e(2, 3, 6)] })), [e(2, 3, 10)]);
    assert.deepEqual(loadDelta(counts({ a: [e(2, 3, 4)] }), counts({ a: [e(2, 3, 4)] })), [], 'nothing routed');
  });
});

describe('nextBaseline', () => {
  it("keeps a silent member's last counts, so its tokens count once it answers; drops departed workers", () => {
    const previous = counts({ w1: [e(0, 0, 10)], w2: [e(0, 0, 20)], gone: [e(0, 0, 1)] });
    const current = counts({ w1: [e(0, 0, 15)] });
    const next = nextBaseline(previous, current, ['w1', 'w2', 'w3']);
    assert.deepEqual([...next], [['w1', [e(0, 0, 15)]], ['w2', [e(0, 0, 20)]]]);
    // w2 answers again: the tokens it routed while silent show up now, counted once.
    assert.deepEqual(loadDelta(next, counts({ w1: [e(0, 0, 15)], w2: [e(0, 0, 26)] })), [e(0, 0, 6)]);
  });
});

describe('shouldRebalance', () => {
  const moe: ModelFootprint = { numLayers: 2, layerBytes: 2 * MiB, embeddingBytes: MiB, headBytes: MiB, numExperts: 8, expertBytes: 4 * MiB };
  const members: MemberInfo[] = ['w1', 'w2', 'w3', 'w4'].map((id) => ({
    id: workerId(id),
    address: `127.0.0.1:${7000 + Number(id[1])}`,
    memoryBytes: 1 << 30,
    accelerators: ['cpu'],
    load: { activeSequences: 0, queueDepth: 0 },
    startedAtMs: 0,
  }));
  const candidate = (previous: ReturnType<typeof planPlacement>, expertLoad: readonly ExpertLoad[]) =>
    planPlacement({ members, model: moe, previous, epoch: previous.epoch + 1, modelId: 'm', expertsMode: 'spread', expertLoad });
  const plan = planPlacement({ members, model: moe, epoch: 1, modelId: 'm', expertsMode: 'spread' });
  const even = Array.from({ length: 16 }, (_, i) => e(Math.floor(i / 8), i % 8, 100));

  it('re-plans when a hot expert would get a copy; once it has it, the same load changes nothing', () => {
    const skewed = even.map((l) => (l.layer === 1 && l.expert === 4 ? e(1, 4, 400) : l)); // 400 of 1100: share x 8 = 2.9
    const next = candidate(plan, skewed);
    assert.equal(shouldRebalance(plan, next, skewed), true);
    assert.equal(next.experts?.find((p) => p.layer === 1 && p.expert === 4)?.workers.length, 3);
    assert.equal(shouldRebalance(next, candidate(next, skewed), skewed), false, 'stable: no re-plan every interval');
  });

  it('does not re-plan for an even load, a window too small to go by, or a plan without expert placement', () => {
    assert.equal(shouldRebalance(plan, candidate(plan, even), even), false);
    const skewed = [e(0, 0, 900), e(0, 1, 10)];
    assert.equal(shouldRebalance(plan, candidate(plan, skewed), skewed), true);
    assert.equal(shouldRebalance(plan, candidate(plan, skewed), []), false, 'no tokens seen: nothing to go by');
    // 16 experts: a window needs 16 x MIN_TOKENS_PER_EXPERT tokens (256), however skewed.
    const small = [e(0, 0, 16 * MIN_TOKENS_PER_EXPERT - 11), e(0, 1, 10)];
    assert.equal(significant(small, plan), false);
    assert.equal(shouldRebalance(plan, candidate(plan, small), small), false, 'chance, not routing');
    assert.equal(significant([...small, e(1, 1, 1)], plan), true);
    const layers = { ...plan, experts: undefined };
    assert.equal(significant(skewed, layers), false);
    assert.equal(shouldRebalance(layers, candidate(plan, skewed), skewed), false);
  });

  it('compares placements, not the order they are listed in', () => {
    const shuffled = { ...plan, experts: [...(plan.experts ?? [])].reverse().map((p) => ({ ...p, workers: [...p.workers].reverse() })) };
    assert.equal(shouldRebalance(plan, shuffled, even), false);
  });
});
