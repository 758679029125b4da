/**
 * GGUF files written from the fixtures read back as the same model: names, shapes, types, bytes
 * and config; quantized files hold exactly what the quantizer made of each row (q/k rows back in
 * Hugging Face order, each Mixtral expert its own slice of the stacked tensor); and every kind of
 * bad file is a CheckpointError naming the file and the tensor.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CheckpointError } from '../../../../common/errors';
import { Checkpoint } from '../../../../common/model/checkpoint';
import { toFloat32 } from '../../../../common/model/dtype';
import { GgufCheckpoint } from '../../../../common/model/gguf/gguf-checkpoint';
import { defaultQuantizeRows } from '../../../../common/model/gguf/quantize-rows';
import { openModel, storedTensorBytes } from '../../../../common/model/open-model';
import { fixtureDir, rejection, type FixtureName } from '../../../support/checkpoints';
import { fixtureGguf, patchedCopy, setSameLengthString, setTensorType, setU32, truncatedGguf } from '../../../support/gguf';

const FIXTURES: FixtureName[] = ['tiny-mistral', 'tiny-mixtral'];

for (const name of FIXTURES) {
  describe(`${name} as GGUF`, () => {
    test('BF16: same tensor names, shapes, config; matrices byte for byte, norms and router widened exactly', async (t) => {
      const dir = await Checkpoint.open(fixtureDir(name));
      const path = await fixtureGguf(t, name, 'BF16');
      const gguf = await openModel(path);
      assert.ok(gguf instanceof GgufCheckpoint);
      assert.deepEqual(gguf.config, dir.config);
      assert.deepEqual(new Set(gguf.tensorNames), new Set(dir.tensorNames));
      for (const tensor of dir.tensorNames) {
        const a = await dir.readRaw(tensor);
        const b = await gguf.readRaw(tensor, a.shape);
        assert.deepEqual(b.shape, a.shape, tensor);
        if (a.shape.length === 2 && !tensor.endsWith('block_sparse_moe.gate.weight')) {
          assert.equal(b.dtype, 'BF16', tensor);
          assert.ok(Buffer.from(b.bytes).equals(Buffer.from(a.bytes)), `${tensor} bytes`);
        } else {
          assert.equal(b.dtype, 'F32', tensor);
          assert.deepEqual(toFloat32(b.bytes, 'F32'), toFloat32(a.bytes, a.dtype), tensor);
        }
      }
    });

    for (const type of ['Q8_0', 'Q4_0'] as const) {
      test(`${type}: each matrix's bytes are the quantizer's output for the directory's rows`, async (t) => {
        const dir = await Checkpoint.open(fixtureDir(name));
        const gguf = await GgufCheckpoint.open(await fixtureGguf(t, name, type));
        let matrices = 0;
        for (const tensor of dir.tensorNames) {
          const shape = dir.entry(tensor).shape;
          const raw = await gguf.readRaw(tensor);
          if (shape.length !== 2 || tensor.endsWith('block_sparse_moe.gate.weight')) {
            assert.equal(raw.dtype, 'F32', tensor);
            continue;
          }
          matrices++;
          assert.equal(raw.dtype, type, tensor);
          const expected = defaultQuantizeRows()(type, await dir.readF32(tensor), shape[0], shape[1]);
          assert.ok(Buffer.from(raw.bytes).equals(Buffer.from(expected)), `${tensor}: bytes differ from the quantizer's`);
          assert.equal(storedTensorBytes(gguf, tensor), expected.byteLength, `${tensor} stored size`);
        }
        assert.ok(matrices > 20, `checked ${matrices} matrices`);
      });
    }
  });
}

describe('bad GGUF files are CheckpointErrors naming the file and the tensor', () => {
  test('a truncated file: cut in the header, cut in the tensor data', async (t) => {
    const good = await fixtureGguf(t, 'tiny-mistral', 'BF16');
    const inHeader = await truncatedGguf(t, good, 4000);
    const e1 = await rejection(GgufCheckpoint.open(inHeader), CheckpointError);
    assert.match(e1.message, /bad\.gguf.*truncated/);
    const inData = await truncatedGguf(t, good, 9_000_000);
    const e2 = await rejection(GgufCheckpoint.open(inData), CheckpointError);
    assert.match(e2.message, /bad\.gguf: tensor output\.weight: truncated/);
  });

  test('an unknown version', async (t) => {
    const bad = await patchedCopy(t, await fixtureGguf(t, 'tiny-mistral', 'BF16'), (b) => b.writeUInt32LE(4, 4));
    const err = await rejection(GgufCheckpoint.open(bad), CheckpointError);
    assert.match(err.message, /bad\.gguf: GGUF version 4 is not supported/);
  });

  test('a tensor whose shape disagrees with the metadata', async (t) => {
    const bad = await patchedCopy(t, await fixtureGguf(t, 'tiny-mistral', 'BF16'), (b) => setU32(b, 'llama.feed_forward_length', 160));
    const err = await rejection(GgufCheckpoint.open(bad), CheckpointError);
    assert.match(err.message, /bad\.gguf: tensor blk\.0\.ffn_gate\.weight: shape \[192, 64\] disagrees with the metadata, which implies \[160, 64\]/);
  });

  test('an architecture that is not llama', async (t) => {
    const bad = await patchedCopy(t, await fixtureGguf(t, 'tiny-mistral', 'BF16'), (b) => setSameLengthString(b, 'general.architecture', 'qwen2'));
    const err = await rejection(GgufCheckpoint.open(bad), CheckpointError);
    assert.match(err.message, /bad\.gguf: architecture "qwen2" is not supported/);
  });

  test('a tensor type Bora cannot run', async (t) => {
    const bad = await patchedCopy(t, await fixtureGguf(t, 'tiny-mixtral', 'Q8_0'), (b) => setTensorType(b, 'blk.2.ffn_up_exps.weight', 13));
    const err = await rejection(GgufCheckpoint.open(bad), CheckpointError);
    assert.match(err.message, /bad\.gguf: tensor blk\.2\.ffn_up_exps\.weight: stored as Q5_K \(13\), a type Bora cannot run/);
  });

  test('not a GGUF file at all', async (t) => {
    const bad = await patchedCopy(t, await fixtureGguf(t, 'tiny-mistral', 'BF16'), (b) => b.write('GGML', 0));
    const err = await rejection(GgufCheckpoint.open(bad), CheckpointError);
    assert.match(err.message, /bad\.gguf: not a GGUF file/);
  });
});
