/**
 * KV caches moved between engines, as a planned hand-over moves them between workers: a sequence
 * decoded part of the way on one split of the model, its caches snapshotted per layer range,
 * sent through the wire format (KvSlices, chunked) and restored into the engines of another
 * split, goes on to give exactly the reference tokens — across tiny-mistral's sliding window
 * (the cache rolls) and for tiny-mixtral. A snapshot that does not fit is refused.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import type { StageEngine } from '../../common/engine/stage-engine';
import { FailedPreconditionError } from '../../common/errors';
import { sequenceId } from '../../common/ids';
import { Checkpoint } from '../../common/model/checkpoint';
import type { SequenceSnapshot } from '../../worker/engine-protocol';
import { SnapshotAssembler, toSlices } from '../../worker/kv-transfer';
import { fixtureDir, loadReference, type FixtureName } from '../support/checkpoints';
import { argmaxRows, loadPipeline, runPipeline } from '../support/pipeline';

const STEPS = 40;
/** Tokens decoded before the caches move (past tiny-mistral's window of 24 with every prompt). */
const MOVE_AFTER = 17;

/** Snapshot of `layers` from whichever engine of `from` holds them, through the wire format. */
function overTheWire(from: readonly StageEngine[], id: string, layers: { start: number; end: number }): SequenceSnapshot[] {
  const out: SequenceSnapshot[] = [];
  for (const engine of from) {
    const start = Math.max(layers.start, engine.range.start);
    const end = Math.min(layers.end, engine.range.end);
    if (start >= end) continue;
    const c = engine.config;
    const assembler = new SnapshotAssembler({ start, end }, c.numKvHeads, c.headDim);
    for (const [sid, snapshot] of engine.snapshotCaches([sequenceId(id)], { start, end })) {
      // 700 bytes per slice: several slices per layer, so reassembly across chunks is exercised.
      for (const slice of toSlices({ id: sid, layerStart: start, snapshot }, c.numKvHeads, c.headDim, 700)) assembler.add(slice);
    }
    out.push(...assembler.finish());
  }
  return out;
}

for (const name of ['tiny-mistral', 'tiny-mixtral'] as FixtureName[]) {
  describe(`${name}: caches moved between splits`, () => {
    const ref = loadReference(name);
    let ckpt: Checkpoint;
    before(async () => {
      ckpt = await Checkpoint.open(fixtureDir(name));
    });

    test(`decode ${MOVE_AFTER} tokens on one split, move the caches to another, finish: the reference tokens`, async () => {
      const L = ckpt.config.numLayers;
      const from = await loadPipeline(ckpt, [Math.floor(L / 2)]);
      const to = await loadPipeline(ckpt, L > 2 ? [1, L - 1] : [1]);
      for (const [i, c] of ref.cases.entries()) {
        const id = `case-${i}`;
        const sid = sequenceId(id);
        const tokens: number[] = [];
        let out = await runPipeline(from, [{ id: sid, startPosition: 0, tokenCount: c.prompt_ids.length, tokenIds: c.prompt_ids }]);
        for (let step = 0; step < STEPS; step++) {
          tokens.push(argmaxRows(out.logits!, 1)[0]);
          if (step === STEPS - 1) break;
          const stages = step < MOVE_AFTER ? from : to;
          if (step === MOVE_AFTER) {
            for (const engine of to) {
              const entries = overTheWire(from, id, engine.range);
              const layers = entries.reduce((n, e) => n + e.snapshot.layers.length, 0);
              assert.equal(layers, engine.range.end - engine.range.start, 'every layer of the new stage has its cache');
              for (const e of entries) engine.restoreCache(sequenceId(e.id), e.layerStart, e.snapshot);
              assert.equal(engine.nextPosition(sid), c.prompt_ids.length + step, `layers [${engine.range.start}, ${engine.range.end}) at the sequence's position`);
            }
          }
          out = await runPipeline(stages, [{ id: sid, startPosition: c.prompt_ids.length + step, tokenCount: 1, tokenIds: [tokens[step]] }]);
        }
        assert.deepEqual(tokens, c.greedy_tokens, `case ${i}`);
        for (const e of [...from, ...to]) e.release(sid);
      }
      await Promise.all([...from, ...to].map((e) => e.close()));
    });
  });
}

describe('a cache snapshot that does not fit', () => {
  test('is refused with FailedPreconditionError, and a malformed slice with UnavailableError', async () => {
    const ckpt = await Checkpoint.open(fixtureDir('tiny-mistral'));
    const [a, b] = await loadPipeline(ckpt, [3]);
    const one = sequenceId('one');
    const two = sequenceId('two');
    await runPipeline([a, b], [{ id: one, startPosition: 0, tokenCount: 5, tokenIds: [1, 2, 3, 4, 5] }]);
    await runPipeline([a, b], [{ id: two, startPosition: 0, tokenCount: 3, tokenIds: [1, 2, 3] }]);
    const snapOne = a.snapshotCaches([one], { start: 0, end: 3 }).get(one)!;
    const snapTwo = a.snapshotCaches([two], { start: 0, end: 1 }).get(two)!;
    assert.throws(() => b.restoreCache(one, 0, snapOne), /not inside|does not fit/, 'layers outside the stage');
    // Layers 0-2 of "one" (5 positions) then layer 0 of "two" (3 positions) into the same cache.
    const [fresh] = await loadPipeline(ckpt, [3]);
    fresh.restoreCache(one, 0, snapOne);
    assert.throws(() => fresh.restoreCache(one, 0, snapTwo), FailedPreconditionError);
    assert.equal(fresh.nextPosition(one), 5, 'the refused snapshot changed nothing');

    const c = ckpt.config;
    const [slice] = toSlices({ id: 'one', layerStart: 0, snapshot: snapOne }, c.numKvHeads, c.headDim);
    const assembler = new SnapshotAssembler({ start: 0, end: 3 }, c.numKvHeads, c.headDim);
    assert.throws(() => assembler.add({ ...slice, keys: slice.keys.subarray(4) }), /malformed/);
    assert.throws(() => assembler.add({ ...slice, layer: 7 }), /malformed/);
    assembler.add(slice);
    assert.throws(() => assembler.finish(), /without all of layer/, 'layers 1 and 2 never arrived');
    await Promise.all([a, b, fresh].map((e) => e.close()));
  });
});
