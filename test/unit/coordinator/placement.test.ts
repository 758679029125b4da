import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type MemberInfo } from '../../../common/cluster/member';
import { type Plan, assignmentsOf, decodePlan, encodePlan, stageOf } from '../../../common/cluster/plan';
import { InvalidArgumentError, ResourceExhaustedError, UnavailableError } from '../../../common/errors';
import { type WorkerId, workerId } from '../../../common/ids';
import { type ExpertLoad, type ModelFootprint, type PlacementInput, planPlacement } from '../../../coordinator/placement';

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

describe('planPlacement: experts by routing load', () => {
  const spread = (members: MemberInfo[], extra: Partial<PlacementInput> = {}): Plan => place(members, { model: moe, expertsMode: 'spread', ...extra });
  const workers = (n: number, memoryBytes = GiB()): MemberInfo[] => Array.from({ length: n }, (_, i) => member(`w${i + 1}`, memoryBytes));
  const holders = (plan: Plan, layer: number, expert: number): readonly WorkerId[] =>
    plan.experts?.find((p) => p.layer === layer && p.expert === expert)?.workers ?? [];
  /** Every expert of `model` with `tokens`, except those `hot` names. */
  function load(tokens: number, hot: Record<string, number> = {}, model: ModelFootprint = moe): ExpertLoad[] {
    return Array.from({ length: model.numLayers * model.numExperts }, (_, i) => {
      const [layer, expert] = [Math.floor(i / model.numExperts), i % model.numExperts];
      return { layer, expert, tokens: hot[`${layer}:${expert}`] ?? tokens };
    });
  }
  /** Expected tokens per worker in `layer` (or all layers): each copy serves tokens / copies. */
  function expectedTokens(plan: Plan, entries: readonly ExpertLoad[], layer?: number): number[] {
    const byWorker = new Map<string, number>();
    for (const p of plan.experts ?? []) {
      if (layer !== undefined && p.layer !== layer) continue;
      const tokens = entries.find((l) => l.layer === p.layer && l.expert === p.expert)?.tokens ?? 0;
      for (const w of p.workers) byWorker.set(w, (byWorker.get(w) ?? 0) + tokens / p.workers.length);
    }
    return [...byWorker.values()];
  }
  const standbys = (plan: Plan): number => plan.stages.reduce((n, st) => n + st.workers.length - 1, 0);
  const assertRequiredCopies = (plan: Plan, members: number): void => {
    for (const p of plan.experts ?? []) {
      assert.ok(p.workers.length >= Math.min(2, members), `expert ${p.expert} of layer ${p.layer} on ${p.workers.join(', ')}`);
      assert.equal(new Set(p.workers).size, p.workers.length);
    }
  };

  it('without a load, with an empty one or one of zeros: exactly the placement without one', () => {
    const plan = spread(workers(3));
    // The placement before routing load existed, layer 0 (three equal workers).
    assert.deepEqual((plan.experts ?? []).filter((p) => p.layer === 0).map((p) => p.workers.join('')), ['w1w3', 'w1w2', 'w2w3', 'w1w3', 'w1w2', 'w2w3', 'w1w3', 'w1w2']);
    for (const [n, replicas] of [[1, 1], [2, 2], [3, 1], [3, 2], [4, 2]] as const) {
      const members = [...workers(n - 1), member(`w${n}`, 300 * MiB)];
      const without = spread(members, { replicas });
      assert.deepEqual(spread(members, { replicas, expertLoad: [] }), without);
      assert.deepEqual(spread(members, { replicas, expertLoad: load(0) }), without, `${n} workers, replicas ${replicas}`);
      if (n === 1) continue;
      const repaired = spread(members.slice(1), { replicas, previous: without, epoch: 2 });
      assert.deepEqual(spread(members.slice(1), { replicas, previous: without, epoch: 2, expertLoad: load(0) }), repaired);
    }
  });

  it('a hot expert (share > 2 / numExperts) gets ceil(share x numExperts) copies, at most one per member', () => {
    // Layer 2 has 1000 tokens; expert 5 takes `hot` of them and the other 7 share the rest.
    const cases: { members: number; hot: number; copies: number }[] = [
      { members: 4, hot: 250, copies: 2 }, // exactly twice an even share (1/8): not hot
      { members: 4, hot: 251, copies: 3 },
      { members: 4, hot: 375, copies: 3 }, // share x 8 = 3
      { members: 4, hot: 376, copies: 4 },
      { members: 4, hot: 900, copies: 4 }, // capped at the members
      { members: 3, hot: 500, copies: 3 },
      { members: 2, hot: 900, copies: 2 },
      { members: 1, hot: 900, copies: 1 },
    ];
    for (const c of cases) {
      const rest = (1000 - c.hot) / 7;
      const entries = [0, 1, 2, 3, 4, 5, 6, 7].map((expert) => ({ layer: 2, expert, tokens: expert === 5 ? c.hot : rest }));
      // The rest must be whole tokens: spread the remainder over the first experts.
      const whole = entries.map((e, i) => ({ ...e, tokens: e.expert === 5 ? e.tokens : Math.floor(rest) + (i < (1000 - c.hot) % 7 ? 1 : 0) }));
      const plan = spread(workers(c.members), { expertLoad: whole });
      assert.equal(holders(plan, 2, 5).length, c.copies, `${c.hot} of 1000 tokens over ${c.members} workers`);
      for (const p of plan.experts ?? []) if (p.layer !== 2 || p.expert !== 5) assert.equal(p.workers.length, Math.min(2, c.members));
      assertRequiredCopies(plan, c.members);
    }
  });

  it('repair keeps every copy in place and adds the hot expert a copy on a worker that had none', () => {
    const members = workers(4);
    const previous = spread(members);
    const next = spread(members, { previous, epoch: 2, expertLoad: load(100, { '1:6': 400 }) });
    assert.deepEqual(next.stages, previous.stages);
    const before = holders(previous, 1, 6);
    const after = holders(next, 1, 6);
    assert.equal(after.length, 3);
    assert.ok(before.every((w) => after.includes(w)), `kept ${before.join(', ')} in ${after.join(', ')}`);
    for (const p of next.experts ?? []) if (p.layer !== 1 || p.expert !== 6) assert.deepEqual(p.workers, holders(previous, p.layer, p.expert));
    // Once the load has cooled down the copy stays: nothing is dropped or moved by a repair.
    assert.deepEqual(spread(members, { previous: next, epoch: 3, expertLoad: load(100) }).experts, next.experts);
    // Losing a worker under load: every expert still on two workers, the hot one on three.
    const survivors = members.filter((m) => m.id !== after[0]);
    const lost = spread(survivors, { previous: next, epoch: 3, expertLoad: load(100, { '1:6': 400 }) });
    assert.equal(holders(lost, 1, 6).length, 3);
    assertRequiredCopies(lost, 3);
    assertFits(lost, survivors, moe, true);
  });

  it('spreads expected dispatch load: within one copy\'s share per layer, far better than by memory', () => {
    // Each layer: one expert with 300 tokens (3 copies of 100), six with 100 (2 of 50), one with 20.
    const entries = load(100, { '0:0': 300, '0:7': 20, '1:1': 300, '1:7': 20, '2:2': 300, '2:7': 20, '3:3': 300, '3:7': 20 });
    const members = workers(4);
    const plan = spread(members, { expertLoad: entries });
    const byMemory = spread(members);
    for (let layer = 0; layer < moe.numLayers; layer++) {
      const tokens = expectedTokens(plan, entries, layer);
      assert.equal(tokens.length, 4);
      // The bound: max - min <= the largest copy's share in the layer (300 / 3 = 100).
      assert.ok(Math.max(...tokens) - Math.min(...tokens) <= 100, `layer ${layer}: ${tokens.join(', ')}`);
      const memoryOnly = expectedTokens(byMemory, entries, layer);
      assert.ok(Math.max(...tokens) < Math.max(...memoryOnly), `layer ${layer}: ${tokens.join(', ')} vs ${memoryOnly.join(', ')} by memory`);
    }
    const total = expectedTokens(plan, entries);
    assert.ok(Math.max(...total) - Math.min(...total) <= 100, `over all layers: ${total.join(', ')}`);
    assertRequiredCopies(plan, 4);
    assertFits(plan, members, moe, true);
  });

  it('no room for a further copy: the hot expert keeps two, no error', () => {
    // These three workers are exactly full with the required copies (91, 88 and 87 MiB).
    const members = [member('w1', 91 * MiB), member('w2', 88 * MiB), member('w3', 87 * MiB)];
    const plan = spread(members, { expertLoad: load(10, { '1:2': 500 }) });
    assert.equal(holders(plan, 1, 2).length, 2);
    assertRequiredCopies(plan, 3);
    assertFits(plan, members, moe, true);
    assert.equal(holders(spread(workers(3), { expertLoad: load(10, { '1:2': 500 }) }), 1, 2).length, 3, 'with room it gets a third');
  });

  it('a load never costs a required copy or a standby, whatever the memory', () => {
    // Tight, uneven memory: placing by load alone fails or drops standbys in some of these.
    let seed = 1;
    const random = (): number => (seed = (seed * 48271) % 2147483647) / 2147483647;
    const small: ModelFootprint = { numLayers: 2, layerBytes: MiB, embeddingBytes: 0, headBytes: 0, numExperts: 4, expertBytes: MiB };
    let compared = 0;
    for (let i = 0; i < 300; i++) {
      const members = workers(3).map((m) => member(m.id, (2 + Math.floor(random() * 10)) * MiB));
      const entries = load(0, { '0:0': 100, '0:1': Math.floor(random() * 20), '1:2': Math.floor(random() * 100), '1:3': 10 }, small);
      const replicas = random() < 0.5 ? 1 : 2;
      let without: Plan;
      try {
        without = spread(members, { model: small, replicas });
      } catch (err) {
        assert.ok(err instanceof ResourceExhaustedError);
        assert.throws(() => spread(members, { model: small, replicas, expertLoad: entries }), ResourceExhaustedError);
        continue;
      }
      const plan = spread(members, { model: small, replicas, expertLoad: entries });
      assertRequiredCopies(plan, 3);
      assertFits(plan, members, small, true);
      assert.ok(standbys(plan) >= standbys(without), `standbys ${standbys(plan)} < ${standbys(without)} for ${members.map((m) => m.memoryBytes / MiB)}`);
      compared++;
    }
    assert.ok(compared > 100, `${compared} tables fit`);
  });

  it('is deterministic: the order of members and load entries does not matter, entries add up', () => {
    const members = [member('a', 300 * MiB), member('b', GiB()), member('c', 200 * MiB), member('d', GiB())];
    const entries = load(30, { '0:3': 200, '2:1': 90, '3:7': 400 });
    const expected = spread(members, { replicas: 2, expertLoad: entries });
    assert.ok((expected.experts ?? []).some((p) => p.workers.length > 2), 'the table has hot experts');
    const split = entries.flatMap((e) => (e.tokens > 1 ? [{ ...e, tokens: 1 }, { ...e, tokens: e.tokens - 1 }] : [e]));
    for (const order of [[3, 2, 1, 0], [1, 3, 0, 2], [2, 0, 3, 1]]) {
      const shuffled = [...split].sort((x, y) => ((x.layer * 7 + x.expert * order[0]) % 5) - ((y.layer * 7 + y.expert * order[0]) % 5) || y.tokens - x.tokens);
      assert.deepEqual(spread(order.map((i) => members[i]), { replicas: 2, expertLoad: shuffled }), expected);
    }
  });

  it('rejects a load outside the model', () => {
    const members = workers(3);
    assert.throws(() => spread(members, { expertLoad: [{ layer: 4, expert: 0, tokens: 1 }] }), InvalidArgumentError);
    assert.throws(() => spread(members, { expertLoad: [{ layer: 0, expert: 8, tokens: 1 }] }), InvalidArgumentError);
    assert.throws(() => spread(members, { expertLoad: [{ layer: 0, expert: 0, tokens: -1 }] }), InvalidArgumentError);
    assert.throws(() => spread(members, { expertLoad: [{ layer: 0, expert: 0, tokens: 1.5 }] }), InvalidArgumentError);
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
