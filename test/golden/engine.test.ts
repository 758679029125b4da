/**
 * The engine against transformers' reference outputs: every case's 40 greedy tokens and its
 * first-step logits, in one process, across every pipeline split point, batched, sharded f32
 * and f16, layer-by-layer hidden states, and Mixtral's router choices. Each with the native
 * kernels and with onnxruntime alone (the fallback where the kernels are not built).
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { EmbeddingTable } from '../../common/engine/embedding';
import { StageEngine } from '../../common/engine/stage-engine';
import { embeddingSpec } from '../../common/model/weights';
import { sequenceId } from '../../common/ids';
import { Checkpoint } from '../../common/model/checkpoint';
import type { TokenRoute } from '../../common/engine/moe-routing';
import { rewriteCheckpoint } from '../../common/model/rewrite';
import { assertReferenceRoutes, fixtureDir, loadReference, makeTempDir, shardedCopy, type FixtureName, type TempDir } from '../support/checkpoints';
import { argmaxRows, greedyBatch, loadPipeline, maxAbsDiff } from '../support/pipeline';
import type { LinearBackend } from '../../common/kernels/native-kernels';
import { nativeSkip } from '../support/kernels';

const STEPS = 40;
/** The reference README: an engine that is right matches the logits to about 1e-4. */
const LOGITS_TOLERANCE = 1e-4;
const HIDDEN_TOLERANCE = 1e-4;

for (const [name, linear] of (['tiny-mistral', 'tiny-mixtral'] as FixtureName[]).flatMap((n) => (['native', 'onnx'] as LinearBackend[]).map((b) => [n, b] as const))) {
  describe(`${name} golden, linear layers on ${linear}`, { skip: linear === 'native' ? nativeSkip : false }, () => {
    const compute = { threads: 1, linear };
    const ref = loadReference(name);
    const prompts = ref.cases.map((c) => c.prompt_ids);
    let ckpt: Checkpoint;
    before(async () => {
      ckpt = await Checkpoint.open(fixtureDir(name));
    });

    test('one process: each case alone gives the reference tokens and logits', async () => {
      const [engine] = await loadPipeline(ckpt, [], linear);
      for (const [i, c] of ref.cases.entries()) {
        const { tokens, firstLogits } = await greedyBatch([engine], [c.prompt_ids], STEPS, `alone${i}`);
        assert.deepEqual(tokens[0], c.greedy_tokens, `case ${i} tokens`);
        const diff = maxAbsDiff(firstLogits[0], c.last_prompt_logits);
        assert.ok(diff <= LOGITS_TOLERANCE, `case ${i}: logits differ by ${diff}`);
      }
      assert.equal(engine.sequenceCount, 0, 'released sequences leave no cache behind');
      await engine.close();
    });

    test('one process: all cases batched together (different lengths) give the same tokens', async () => {
      const [engine] = await loadPipeline(ckpt, [], linear);
      const { tokens } = await greedyBatch([engine], prompts, STEPS);
      ref.cases.forEach((c, i) => assert.deepEqual(tokens[i], c.greedy_tokens, `case ${i}`));
      await engine.close();
    });

    test('two stages [0, a) + [a, L) give the reference tokens for every split point a', async () => {
      for (let a = 1; a < ckpt.config.numLayers; a++) {
        const stages = await loadPipeline(ckpt, [a], linear);
        const { tokens, firstLogits } = await greedyBatch(stages, prompts, STEPS, `split${a}`);
        ref.cases.forEach((c, i) => {
          assert.deepEqual(tokens[i], c.greedy_tokens, `split ${a}, case ${i}`);
          assert.ok(maxAbsDiff(firstLogits[i], c.last_prompt_logits) <= LOGITS_TOLERANCE, `split ${a}, case ${i} logits`);
        });
        await Promise.all(stages.map((s) => s.close()));
      }
    });

    test('case 0: each single-layer stage maps hidden_states[l] to hidden_states[l + 1]', async () => {
      const values = ref.cases[0].hidden_states!.values;
      const H = ckpt.config.hiddenSize;
      const ids = ref.cases[0].prompt_ids;
      const embedding = new EmbeddingTable(await ckpt.readRaw(embeddingSpec(ckpt.config).name), ckpt.config.vocabSize, H);
      assert.ok(maxAbsDiff(embedding.lookup(ids), values[0].flat()) <= 1e-5, 'embedding output (reference.json keeps 6 significant digits)');
      for (let layer = 0; layer < ckpt.config.numLayers; layer++) {
        const stage = await StageEngine.load(ckpt, { start: layer, end: layer + 1 }, { compute });
        const input = layer === 0 ? undefined : Float32Array.from(values[layer].flat());
        const out = await stage.forward({
          slices: [{ id: sequenceId('h'), startPosition: 0, tokenCount: ids.length, tokenIds: layer === 0 ? ids : undefined }],
          hidden: input,
        });
        assert.equal(out.hidden.length, ids.length * H);
        const diff = maxAbsDiff(out.hidden, values[layer + 1].flat());
        assert.ok(diff <= HIDDEN_TOLERANCE, `layer ${layer}: differs by ${diff}`);
        await stage.close();
      }
    });

    test('sharded float32 and float16 rewrites give the reference tokens', async (t) => {
      const f32 = await shardedCopy(t, name);
      const f16dir: TempDir = await makeTempDir(`${name}-f16`);
      t.after(() => f16dir.remove());
      await rewriteCheckpoint(fixtureDir(name), f16dir.path, { dtype: 'f16' });
      for (const dir of [f32, f16dir.path]) {
        const [engine] = await loadPipeline(await Checkpoint.open(dir), [], linear);
        const { tokens } = await greedyBatch([engine], prompts, STEPS);
        ref.cases.forEach((c, i) => assert.deepEqual(tokens[i], c.greedy_tokens, `${dir} case ${i}`));
        await engine.close();
      }
    });

    if (linear === 'native') {
      test('batch- and shape-invariant: a replayed prefill, token-by-token decode and batching give bit-identical logits', async () => {
        const [engine] = await loadPipeline(ckpt, [], linear);
        const c = ref.cases[0];
        // Decode case 0 token by token (alone), keeping every step's logits.
        const id = sequenceId('inv-step');
        let out = await engine.forward({ slices: [{ id, startPosition: 0, tokenCount: c.prompt_ids.length, tokenIds: c.prompt_ids }] });
        const stepLogits = [out.logits!];
        const tokens = [...c.prompt_ids];
        for (let step = 0; step < 24; step++) {
          const next = argmaxRows(out.logits!, 1)[0];
          out = await engine.forward({ slices: [{ id, startPosition: tokens.length, tokenCount: 1, tokenIds: [next] }] });
          tokens.push(next);
          stepLogits.push(out.logits!);
        }
        engine.release(id);
        // Replay: everything in one prefill (as after a reshard), beside another sequence in the batch.
        const other = ref.cases[1].prompt_ids;
        const replay = await engine.forward({
          slices: [
            { id: sequenceId('inv-other'), startPosition: 0, tokenCount: other.length, tokenIds: other },
            { id: sequenceId('inv-replay'), startPosition: 0, tokenCount: tokens.length, tokenIds: tokens },
          ],
        });
        const vocab = ckpt.config.vocabSize;
        assert.deepEqual(replay.logits!.subarray(vocab, 2 * vocab), stepLogits[stepLogits.length - 1], 'the replayed prefill ends with the same logits, bit for bit');
        // And the first step again, now batched with a sequence mid-decode.
        const again = await engine.forward({
          slices: [
            { id: sequenceId('inv-again'), startPosition: 0, tokenCount: c.prompt_ids.length, tokenIds: c.prompt_ids },
            { id: sequenceId('inv-replay'), startPosition: tokens.length, tokenCount: 1, tokenIds: [argmaxRows(stepLogits[stepLogits.length - 1], 1)[0]] },
          ],
        });
        assert.deepEqual(again.logits!.subarray(0, vocab), stepLogits[0], 'the prompt batched with another sequence gives the same first logits');
        await engine.close();
      });
    }

    if (name === 'tiny-mixtral') {
      test("case 0: the router picks the reference experts with the reference weights", async () => {
        const routed = new Map<number, readonly TokenRoute[]>();
        const engine = await StageEngine.load(ckpt, { start: 0, end: ckpt.config.numLayers }, { compute, onRoute: (layer, routes) => routed.set(layer, routes) });
        const ids = ref.cases[0].prompt_ids;
        await engine.forward({ slices: [{ id: sequenceId('r'), startPosition: 0, tokenCount: ids.length, tokenIds: ids }] });
        assertReferenceRoutes(routed, ref.cases[0]);
        await engine.close();
      });
    }
  });
}
