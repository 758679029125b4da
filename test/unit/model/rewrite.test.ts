import assert from 'node:assert/strict';
import { copyFile, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { CheckpointError, InvalidArgumentError } from '../../../common/errors';
import { Checkpoint, CONFIG_FILE, INDEX_FILE, SINGLE_FILE } from '../../../common/model/checkpoint';
import type { WeightDtype } from '../../../common/model/checkpoint-writer';
import { rewriteCheckpoint } from '../../../common/model/rewrite';
import { copyFixture, fixtureDir, rejection, tempDir, withTensorDtype, type FixtureName } from '../../support/checkpoints';

const FOUR_MIB = 4 * 1024 * 1024;

async function configOf(dir: string): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(join(dir, CONFIG_FILE), 'utf8')) as Record<string, unknown>;
}

/**
 * Largest error round-to-nearest may make storing x in IEEE half: half an ulp, which is 2^(e - 11)
 * for |x| in [2^e, 2^(e+1)) with e >= -14, and 2^-25 in the subnormal range.
 */
function halfRoundingBound(x: number): number {
  const e = Math.max(-14, Math.floor(Math.log2(Math.abs(x))));
  return 2 ** (e - 11);
}

describe('rewriteCheckpoint', () => {
  for (const name of ['tiny-mistral', 'tiny-mixtral'] as const satisfies readonly FixtureName[]) {
    test(`${name} as sharded float32: every tensor exactly equals the bf16 original`, async (t) => {
      const dst = await tempDir(t, `${name}-f32`);
      const written = await rewriteCheckpoint(fixtureDir(name), dst, { dtype: 'f32', maxShardBytes: FOUR_MIB });
      assert.ok(written.files.includes(INDEX_FILE));
      const shards = (await readdir(dst)).filter((f) => f.endsWith('.safetensors'));
      // embed_tokens and lm_head (8 MB each in f32) exceed the limit and get a shard each.
      assert.ok(shards.length >= 3, `${shards.length} shards`);

      const original = await Checkpoint.open(fixtureDir(name));
      const rewritten = await Checkpoint.open(dst);
      assert.deepEqual(rewritten.tensorNames.sort(), original.tensorNames.sort());
      for (const tensor of original.tensorNames) {
        const raw = await rewritten.readRaw(tensor, original.entry(tensor).shape);
        assert.equal(raw.dtype, 'F32');
        assert.deepEqual(await rewritten.readF32(tensor), await original.readF32(tensor), tensor);
      }
      // Same config apart from torch_dtype, every other key kept as it was.
      assert.deepEqual(await configOf(dst), { ...(await configOf(fixtureDir(name))), torch_dtype: 'float32' });
      assert.deepEqual(rewritten.config, { ...original.config });
    });
  }

  test('tiny-mistral as float16: every value within half-precision rounding of the original', async (t) => {
    const dst = await tempDir(t, 'mistral-f16');
    const written = await rewriteCheckpoint(fixtureDir('tiny-mistral'), dst, { dtype: 'f16' });
    assert.deepEqual(written.files, [SINGLE_FILE, CONFIG_FILE]);
    assert.equal((await configOf(dst)).torch_dtype, 'float16');
    const original = await Checkpoint.open(fixtureDir('tiny-mistral'));
    const rewritten = await Checkpoint.open(dst);
    for (const tensor of original.tensorNames) {
      assert.equal((await rewritten.readRaw(tensor)).dtype, 'F16');
      const want = await original.readF32(tensor);
      const got = await rewritten.readF32(tensor);
      assert.equal(got.length, want.length);
      for (let i = 0; i < want.length; i++) {
        // bf16 keeps 8 significant bits and f16 11: values in f16's normal range convert exactly.
        const exact = want[i] === 0 || (Math.abs(want[i]) >= 2 ** -14 && Math.abs(want[i]) <= 65504);
        const error = Math.abs(got[i] - want[i]);
        if (exact ? error !== 0 : error > halfRoundingBound(want[i])) assert.fail(`${tensor}[${i}]: ${want[i]} stored as ${got[i]}`);
      }
    }
  });

  test('bf16 -> f16 -> f32 -> bf16 returns every in-range weight bit for bit', async (t) => {
    const [f16, f32, back] = await Promise.all([tempDir(t, 'chain-f16'), tempDir(t, 'chain-f32'), tempDir(t, 'chain-bf16')]);
    await rewriteCheckpoint(fixtureDir('tiny-mixtral'), f16, { dtype: 'f16', maxShardBytes: FOUR_MIB });
    await rewriteCheckpoint(f16, f32, { dtype: 'f32' });
    await rewriteCheckpoint(f32, back, { dtype: 'bf16', maxShardBytes: 1024 * 1024 });
    const original = await Checkpoint.open(fixtureDir('tiny-mixtral'));
    const roundTripped = await Checkpoint.open(back);
    assert.equal((await configOf(back)).torch_dtype, 'bfloat16');
    for (const tensor of original.tensorNames) {
      const want = await original.readF32(tensor);
      const got = await roundTripped.readF32(tensor);
      for (let i = 0; i < want.length; i++) {
        // A bf16 value in f16's normal range is exact in f16 (8 <= 11 significant bits), so it
        // comes back bit for bit; a smaller one lost bits in f16's subnormal range.
        const exact = want[i] === 0 || (Math.abs(want[i]) >= 2 ** -14 && Math.abs(want[i]) <= 65504);
        const error = Math.abs(got[i] - want[i]);
        if (exact ? !Object.is(got[i], want[i]) : error > halfRoundingBound(want[i])) assert.fail(`${tensor}[${i}]: ${want[i]} came back as ${got[i]}`);
      }
    }
  });

  test('copies tokenizer files and generation defaults, not other files', async (t) => {
    const src = await copyFixture(t, 'tiny-mistral');
    await writeFile(join(src, 'tokenizer.json'), '{"model": {}}');
    await writeFile(join(src, 'tokenizer.model'), Buffer.from([1, 2, 3]));
    await writeFile(join(src, 'generation_config.json'), '{"do_sample": false}');
    await copyFile(join(fixtureDir('tiny-mistral'), 'reference.json'), join(src, 'reference.json'));
    const dst = await tempDir(t, 'rewrite-companions');
    const written = await rewriteCheckpoint(src, dst, { dtype: 'bf16' });
    assert.deepEqual(written.files, [SINGLE_FILE, CONFIG_FILE, 'generation_config.json', 'tokenizer.json', 'tokenizer.model']);
    assert.deepEqual((await readdir(dst)).sort(), [CONFIG_FILE, 'generation_config.json', SINGLE_FILE, 'tokenizer.json', 'tokenizer.model']);
    assert.deepEqual(await readFile(join(dst, 'tokenizer.model')), Buffer.from([1, 2, 3]));
    // Same dtype: the weights are copied bit for bit.
    const a = await Checkpoint.open(src);
    const b = await Checkpoint.open(dst);
    for (const tensor of a.tensorNames) assert.deepEqual((await b.readRaw(tensor)).bytes, (await a.readRaw(tensor)).bytes, tensor);
  });

  test('a source tensor of an unsupported dtype fails before anything is written, naming file and tensor', async (t) => {
    const tensor = 'model.layers.0.mlp.up_proj.weight';
    const src = await withTensorDtype(t, 'tiny-mistral', tensor, 'I8');
    const dst = await tempDir(t, 'rewrite-bad-dtype');
    const err = await rejection(rewriteCheckpoint(src, dst, { dtype: 'f32' }), CheckpointError);
    assert.equal(err.message, `${join(src, SINGLE_FILE)}: tensor ${tensor}: unsupported dtype I8 (expected BF16, F16 or F32)`);
    assert.deepEqual(await readdir(dst), []);
  });

  test('refuses to rewrite in place, an unknown dtype, and a destination holding weights', async (t) => {
    const src = fixtureDir('tiny-mistral');
    const inPlace = await rejection(rewriteCheckpoint(src, `${src}/.`, { dtype: 'f32' }), InvalidArgumentError);
    assert.ok(inPlace.message.includes('cannot be rewritten in place'), inPlace.message);

    const dst = await tempDir(t, 'rewrite-refusals');
    const badDtype = await rejection(rewriteCheckpoint(src, dst, { dtype: 'f64' as WeightDtype }), InvalidArgumentError);
    assert.ok(badDtype.message.includes('dtype must be one of bf16, f16, f32'), badDtype.message);

    await rewriteCheckpoint(src, dst, { dtype: 'bf16' });
    const occupied = await rejection(rewriteCheckpoint(src, dst, { dtype: 'f16' }), InvalidArgumentError);
    assert.ok(occupied.message.includes('already holds checkpoint weights'), occupied.message);
  });
});
