import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type MemberInfo } from '../../../common/cluster/member';
import { type Plan, assignmentsOf, decodePlan, encodePlan, stageOf } from '../../../common/cluster/plan';
import { InvalidArgumentError, ResourceExhaustedError, UnavailableError } from '../../../common/errors';
import { type WorkerId, workerId } from '../../../common/ids';
import { type ModelFootprint, type PlacementInput, planPlacement } from '../../../coordinator/placement';

const MiB = 1 << 20;

function member(id: string, memoryBytes: number): MemberInfo {
  return {
    id: workerId(id),
    address: `127.0.0.1:${7000 + id.charCodeAt(id.length - 1)}`,
    memoryBytes,
    accelerators: ['cpu'],
    load: { activeSequences: 0, queueDepth: 0 },
    startedAtMs: 0,
  };
}

/** 6 dense layers of 10 MiB, no embedding or head bytes unless a case adds them. */
const dense: ModelFootprint = { numLayers: 6, layerBytes: 10 * MiB, embeddingBytes: 0, headBytes: 0, numExperts: 0, expertBytes: 0 };
/** 4 layers with 8 experts each: 2 MiB of attention and 4 MiB per expert. */
const moe: ModelFootprint = { numLayers: 4, layerBytes: 2 * MiB, embeddingBytes: MiB, headBytes: MiB, numExperts: 8, expertBytes: 4 * MiB };

function place(members: MemberInfo[], extra: Partial<PlacementInput> = {}): Plan {
  return planPlacement({ members, model: dense, epoch: 1, modelId: 'tiny', ...extra });
}

const counts = (plan: Plan): number[] => plan.stages.map((s) => s.range.end - s.range.start);
const primaries = (plan: Plan): string[] => plan.stages.map((s) => s.workers[0]);

/** Bytes each worker must hold under `plan` (what placement promised fits). */
function loadBytes(plan: Plan, model: ModelFootprint, spread: boolean): Map<WorkerId, number> {
  const load = new Map<WorkerId, number>();
  const add = (w: WorkerId, bytes: number): void => void load.set(w, (load.get(w) ?? 0) + bytes);
  const perLayer = model.layerBytes + (spread ? 0 : model.numExperts * model.expertBytes);
  for (const s of plan.stages) {
    const bytes = (s.range.end - s.range.start) * perLayer + (s.range.start === 0 ? model.embeddingBytes : 0) + (s.range.end === model.numLayers ? model.headBytes : 0);
    for (const w of s.workers) add(w, bytes);
  }
  for (const p of plan.experts ?? []) for (const w of p.workers) add(w, model.expertBytes);
  return load;
}

function assertFits(plan: Plan, members: MemberInfo[], model: ModelFootprint, spread = false): void {
  for (const [w, bytes] of loadBytes(plan, model, spread)) {
    const m = members.find((x) => x.id === w);
    assert.ok(m !== undefined && bytes <= m.memoryBytes, `${w} holds ${bytes} bytes, has ${m?.memoryBytes}`);
  }
}

describe('planPlacement: layer ranges', () => {
  const cases: { name: string; members: MemberInfo[]; model?: ModelFootprint; counts: number[]; primaries: string[] }[] = [
    { name: '1 worker', members: [member('w1', GiB())], counts: [6], primaries: ['w1'] },
    { name: '2 equal', members: [member('w1', GiB()), member('w2', GiB())], counts: [3, 3], primaries: ['w1', 'w2'] },
    { name: '3 equal', members: ['w1', 'w2', 'w3'].map((id) => member(id, GiB())), counts: [2, 2, 2], primaries: ['w1', 'w2', 'w3'] },
    { name: '4 equal: earlier stages take the extra layers', members: ['w1', 'w2', 'w3', 'w4'].map((id) => member(id, GiB())), counts: [2, 2, 1, 1], primaries: ['w1', 'w2', 'w3', 'w4'] },
    {
      name: '4 equal with embedding and head: the middle stages take the extra layers',
      members: ['w1', 'w2', 'w3', 'w4'].map((id) => member(id, 100 * MiB)),
      model: { ...dense, embeddingBytes: 8 * MiB, headBytes: 8 * MiB },
      counts: [1, 2, 2, 1],
      primaries: ['w1', 'w2', 'w3', 'w4'],
    },
    { name: '2:1 memory gets 2:1 layers', members: [member('a', 200 * MiB), member('b', 100 * MiB)], counts: [4, 2], primaries: ['a', 'b'] },
    { name: '2:1:1 memory over 8 layers', members: [member('a', 200 * MiB), member('b', 100 * MiB), member('c', 100 * MiB)], model: { ...dense, numLayers: 8 }, counts: [4, 2, 2], primaries: ['a', 'b', 'c'] },
    { name: 'stage order is by id, not by memory', members: [member('z', 300 * MiB), member('a', 100 * MiB)], counts: [1, 5], primaries: ['a', 'z'] },
    {
      name: 'more workers than layers: the largest get one layer each',
      members: ['w1', 'w2', 'w3', 'w4', 'w5', 'w6', 'w7', 'w8'].map((id, i) => member(id, (i === 2 || i === 5 ? 50 : 100) * MiB)),
      counts: [1, 1, 1, 1, 1, 1],
      primaries: ['w1', 'w2', 'w4', 'w5', 'w7', 'w8'],
    },
    {
      name: 'a worker too small for the first stage with its embedding is replaced',
      members: [member('a', 12 * MiB), member('b', 100 * MiB), member('c', 100 * MiB)],
      model: { ...dense, embeddingBytes: 8 * MiB },
      counts: [3, 3],
      primaries: ['b', 'c'],
    },
    { name: 'a worker too small for one layer is left out', members: [member('a', 100 * MiB), member('b', 5 * MiB)], counts: [6], primaries: ['a'] },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const model = c.model ?? dense;
      const plan = place(c.members, { model });
      assert.deepEqual(counts(plan), c.counts);
      assert.deepEqual(primaries(plan), c.primaries);
      assert.equal(plan.stages[0].range.start, 0);
      assert.equal(plan.stages[plan.stages.length - 1].range.end, model.numLayers);
      assert.equal(plan.experts, undefined);
      assertFits(plan, c.members, model);
    });
  }

  it('is deterministic: every order of the members gives the same plan', () => {
    const members = [member('a', 300 * MiB), member('b', 100 * MiB), member('c', 200 * MiB), member('d', 100 * MiB)];
    const expected = place(members, { replicas: 2 });
    for (const order of [[3, 2, 1, 0], [1, 3, 0, 2], [2, 0, 3, 1]]) {
      assert.deepEqual(place(order.map((i) => members[i]), { replicas: 2 }), expected);
    }
  });

  it('rejects clusters that cannot hold the model', () => {
    assert.throws(() => place([]), UnavailableError);
    assert.throws(() => place([member('a', 30 * MiB), member('b', 20 * MiB)]), ResourceExhaustedError);
    assert.throws(() => place([member('a', 5 * MiB)]), ResourceExhaustedError);
    // Local experts make each layer 2 + 8 x 4 = 34 MiB: 4 layers + embedding + head = 138 MiB.
    assert.throws(() => place([member('a', 137 * MiB)], { model: moe }), ResourceExhaustedError);
    assert.equal(place([member('a', 138 * MiB)], { model: moe }).stages.length, 1);
  });

  it('rejects nonsense input', () => {
    assert.throws(() => place([member('a', GiB()), member('a', GiB())]), InvalidArgumentError);
    assert.throws(() => place([member('a', GiB())], { epoch: 0 }), InvalidArgumentError);
    assert.throws(() => place([member('a', GiB())], { expertsMode: 'spread' }), InvalidArgumentError);
  });
});

describe('planPlacement: previous plans', () => {
  const three = [member('w1', GiB()), member('w2', GiB()), member('w3', GiB())];

  it('keeps the ranges when every holder is still present, even if a bigger worker joins', () => {
    const previous = place(three);
    const next = place([...three, member('w0', 4 * GiB())], { previous, epoch: 2 });
    assert.deepEqual(next.stages, previous.stages);
    assert.equal(next.epoch, 2);
  });

  it('re-plans over the survivors when a holder without a standby leaves', () => {
    const previous = place(three);
    const next = place([three[0], three[2]], { previous, epoch: 2 });
    assert.deepEqual(counts(next), [3, 3]);
    assert.deepEqual(primaries(next), ['w1', 'w3']);
  });

  it('promotes the standby when a primary leaves, keeping every range', () => {
    const four = [...three, member('w4', GiB())];
    const previous = place(four, { replicas: 2 });
    const lost = previous.stages[1].workers[0];
    const standby = previous.stages[1].workers[1];
    const next = place(four.filter((m) => m.id !== lost), { previous, epoch: 2, replicas: 2 });
    assert.deepEqual(next.stages.map((s) => s.range), previous.stages.map((s) => s.range));
    assert.equal(next.stages[1].workers[0], standby);
    assert.ok(next.stages.every((s) => s.workers.length === 2 && !s.workers.includes(lost)));
  });

  it('does not reuse a plan of another model or shape', () => {
    const previous = place(three);
    const next = place(three, { previous, epoch: 2, model: { ...dense, numLayers: 9 } });
    assert.deepEqual(counts(next), [3, 3, 3]);
  });
});

describe('planPlacement: replicas', () => {
  it('puts each range on a second, distinct worker when memory allows', () => {
    const members = [member('w1', GiB()), member('w2', GiB()), member('w3', GiB())];
    const plan = place(members, { replicas: 2 });
    for (const s of plan.stages) {
      assert.equal(s.workers.length, 2);
      assert.notEqual(s.workers[0], s.workers[1]);
    }
    assertFits(plan, members, dense);
  });

  it('uses spare workers beyond numLayers as standbys', () => {
    const members = ['a', 'b', 'c', 'd'].map((id) => member(id, 100 * MiB));
    const plan = place(members, { replicas: 2, model: { ...dense, numLayers: 2 } });
    assert.deepEqual(plan.stages.map((s) => [...s.workers]), [['a', 'c'], ['b', 'd']]);
  });

  it('leaves a stage with one holder when no worker has room', () => {
    const members = [member('a', 30 * MiB), member('b', 30 * MiB)];
    const plan = place(members, { replicas: 2 });
    assert.deepEqual(plan.stages.map((s) => s.workers.length), [1, 1]);
  });
});

describe('planPlacement: experts spread', () => {
  for (const n of [1, 2, 3]) {
    it(`${n} worker(s): every expert of every layer on min(2, ${n}) distinct workers, balanced`, () => {
      const members = Array.from({ length: n }, (_, i) => member(`w${i + 1}`, GiB()));
      const plan = place(members, { model: moe, expertsMode: 'spread' });
      assert.equal(plan.experts?.length, moe.numLayers * moe.numExperts);
      const perWorker = new Map<string, number>();
      for (const p of plan.experts ?? []) {
        assert.equal(new Set(p.workers).size, p.workers.length);
        assert.equal(p.workers.length, Math.min(2, n));
        for (const w of p.workers) perWorker.set(w, (perWorker.get(w) ?? 0) + 1);
      }
      const loads = [...loadBytes(plan, moe, true).values()];
      assert.ok(Math.max(...loads) - Math.min(...loads) <= moe.layerBytes + moe.expertBytes + moe.embeddingBytes, `loads ${loads}`);
      assertFits(plan, members, moe, true);
      assert.equal(perWorker.size, n);
    });
  }

  it('refills a lost copy from the survivors without moving the ranges', () => {
    const members = ['w1', 'w2', 'w3'].map((id) => member(id, GiB()));
    const previous = place(members, { model: moe, expertsMode: 'spread', replicas: 2 });
    const next = place(members.slice(0, 2), { model: moe, expertsMode: 'spread', replicas: 2, previous, epoch: 2 });
    assert.deepEqual(next.stages.map((s) => s.range), previous.stages.map((s) => s.range));
    assert.ok((next.experts ?? []).every((p) => p.workers.length === 2 && !p.workers.includes(workerId('w3'))));
  });

  it('fails when a second copy does not fit', () => {
    // 4 x 8 x 2 copies x 4 MiB = 256 MiB of experts; two 100 MiB workers cannot hold them.
    assert.throws(() => place([member('a', 100 * MiB), member('b', 100 * MiB)], { model: moe, expertsMode: 'spread' }), ResourceExhaustedError);
  });
});

describe('plan encoding', () => {
  const good = (): Record<string, unknown> => ({
    epoch: 3,
    modelId: 'tiny',
    numLayers: 4,
    stages: [
      { range: { start: 0, end: 1 }, workers: ['a', 'b'] },
      { range: { start: 1, end: 4 }, workers: ['b'] },
    ],
  });

  it('round-trips and answers stageOf / assignmentsOf', () => {
    const plan = decodePlan(JSON.stringify(good()));
    assert.deepEqual(decodePlan(encodePlan(plan)), plan);
    assert.deepEqual(stageOf(plan, 0).range, { start: 0, end: 1 });
    assert.deepEqual(stageOf(plan, 3).range, { start: 1, end: 4 });
    assert.throws(() => stageOf(plan, 4), InvalidArgumentError);
    assert.deepEqual(assignmentsOf(plan, workerId('b')), { ranges: [{ start: 0, end: 1 }, { start: 1, end: 4 }], experts: [] });
    assert.deepEqual(assignmentsOf(plan, workerId('zz')), { ranges: [], experts: [] });
  });

  it('lists a worker\'s experts by layer', () => {
    const plan = place(['w1', 'w2', 'w3'].map((id) => member(id, GiB())), { model: moe, expertsMode: 'spread' });
    const mine = assignmentsOf(plan, workerId('w1'));
    const expected = (plan.experts ?? []).filter((p) => p.workers.includes(workerId('w1'))).length;
    assert.equal(mine.experts.reduce((n, l) => n + l.experts.length, 0), expected);
    assert.deepEqual(mine.experts.map((l) => l.layer), [...new Set(mine.experts.map((l) => l.layer))].sort());
  });

  const broken: [string, (p: Record<string, unknown>) => unknown][] = [
    ['a gap', (p) => ({ ...p, stages: [{ range: { start: 0, end: 1 }, workers: ['a'] }, { range: { start: 2, end: 4 }, workers: ['b'] }] })],
    ['an overlap', (p) => ({ ...p, stages: [{ range: { start: 0, end: 2 }, workers: ['a'] }, { range: { start: 1, end: 4 }, workers: ['b'] }] })],
    ['a short cover', (p) => ({ ...p, stages: [{ range: { start: 0, end: 3 }, workers: ['a'] }] })],
    ['a range past numLayers', (p) => ({ ...p, stages: [{ range: { start: 0, end: 5 }, workers: ['a'] }] })],
    ['an empty range', (p) => ({ ...p, stages: [{ range: { start: 0, end: 0 }, workers: ['a'] }, { range: { start: 0, end: 4 }, workers: ['b'] }] })],
    ['a stage without workers', (p) => ({ ...p, stages: [{ range: { start: 0, end: 4 }, workers: [] }] })],
    ['a worker twice in a stage', (p) => ({ ...p, stages: [{ range: { start: 0, end: 4 }, workers: ['a', 'a'] }] })],
    ['a worker id with a slash', (p) => ({ ...p, stages: [{ range: { start: 0, end: 4 }, workers: ['a/b'] }] })],
    ['epoch 0', (p) => ({ ...p, epoch: 0 })],
    ['a fractional epoch', (p) => ({ ...p, epoch: 1.5 })],
    ['an unknown field', (p) => ({ ...p, owner: 'x' })],
    ['no stages', (p) => ({ ...p, stages: [] })],
    ['an expert placed twice', (p) => ({ ...p, numLayers: 1, stages: [{ range: { start: 0, end: 1 }, workers: ['a'] }], experts: [{ layer: 0, expert: 0, workers: ['a'] }, { layer: 0, expert: 0, workers: ['b'] }] })],
    ['a layer missing its experts', (p) => ({ ...p, experts: [0, 1, 2].map((layer) => ({ layer, expert: 0, workers: ['a'] })) })],
  ];
  for (const [what, mutate] of broken) {
    it(`rejects a plan with ${what}`, () => {
      assert.throws(() => decodePlan(JSON.stringify(mutate(good()))), InvalidArgumentError);
    });
  }

  it('rejects text that is not JSON', () => {
    assert.throws(() => decodePlan('{"epoch": '), InvalidArgumentError);
  });
});

function GiB(): number {
  return 1024 * MiB;
}
