import assert from 'node:assert/strict';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { InvalidArgumentError } from '../../../common/errors';
import { Checkpoint, CONFIG_FILE, INDEX_FILE, SINGLE_FILE } from '../../../common/model/checkpoint';
import type { WeightDtype } from '../../../common/model/checkpoint-writer';
import { DTYPE_BYTES } from '../../../common/model/dtype';
import { makeModel, type MakeModelOptions } from '../../../common/model/make-model';
import { elementCount } from '../../../common/model/safetensors';
import { EMBEDDING, stageTensorSpecs } from '../../../common/model/weights';
import { rejection, tempDir } from '../../support/checkpoints';

type Shape = Omit<MakeModelOptions, 'dtype' | 'seed' | 'outDir'>;

const MISTRAL: Shape = { arch: 'mistral', hiddenSize: 32, numLayers: 2, numHeads: 4, numKvHeads: 2, intermediateSize: 48, vocabSize: 200, slidingWindow: 16 };
const MIXTRAL: Shape = { arch: 'mixtral', hiddenSize: 32, numLayers: 2, numHeads: 4, numKvHeads: 2, intermediateSize: 24, vocabSize: 200, numExperts: 4, expertsPerToken: 2 };
const DTYPES: readonly WeightDtype[] = ['bf16', 'f16', 'f32'];
const STORAGE = { bf16: 'BF16', f16: 'F16', f32: 'F32' } as const;
const SHARD_BYTES = 8 * 1024;

function mean(values: Float32Array): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
}

function std(values: Float32Array): number {
  const m = mean(values);
  return Math.sqrt(values.reduce((a, b) => a + (b - m) ** 2, 0) / values.length);
}

async function weightFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((f) => f.endsWith('.safetensors')).sort();
}

describe('makeModel writes checkpoints Checkpoint.open accepts', () => {
  for (const shape of [MISTRAL, MIXTRAL]) {
    for (const dtype of DTYPES) {
      for (const sharded of [false, true]) {
        test(`${shape.arch} ${dtype} ${sharded ? 'sharded' : 'single file'}`, async (t) => {
          const outDir = await tempDir(t, `make-${shape.arch}-${dtype}`);
          const made = await makeModel({ ...shape, dtype, seed: 7, outDir, maxShardBytes: sharded ? SHARD_BYTES : undefined });
          const ckpt = await Checkpoint.open(outDir);
          const specs = stageTensorSpecs(ckpt.config, 0, shape.numLayers);
          assert.deepEqual(ckpt.tensorNames.sort(), specs.map((s) => s.name).sort());

          const parameterCount = specs.reduce((sum, s) => sum + elementCount(s.shape), 0);
          assert.equal(made.parameterCount, parameterCount);
          assert.equal(made.bytes, parameterCount * DTYPE_BYTES[STORAGE[dtype]]);

          for (const spec of specs) {
            const raw = await ckpt.readRaw(spec.name, spec.shape);
            assert.equal(raw.dtype, STORAGE[dtype], spec.name);
            const values = await ckpt.readF32(spec.name, spec.shape);
            if (spec.shape.length === 1) assert.ok(values.every((v) => v === 1), `${spec.name} is a norm: all ones`);
            else assert.ok(values.every((v) => Number.isFinite(v) && Math.abs(v) < 0.2), `${spec.name} holds a value beyond 10 std`);
          }

          const files = await weightFiles(outDir);
          if (sharded) {
            assert.ok(files.length > 1, `only ${files.join(', ')}`);
            assert.ok(files.every((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f)), files.join(', '));
            const index = JSON.parse(await readFile(join(outDir, INDEX_FILE), 'utf8')) as { metadata: { total_size: number } };
            assert.equal(index.metadata.total_size, made.bytes);
          } else {
            assert.deepEqual(files, [SINGLE_FILE]);
          }
        });
      }
    }
  }

  test('config.json is hub format with the documented defaults', async (t) => {
    const mistralDir = await tempDir(t, 'make-config-mistral');
    await makeModel({ ...MISTRAL, dtype: 'f16', seed: 1, outDir: mistralDir });
    const mistral = JSON.parse(await readFile(join(mistralDir, CONFIG_FILE), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(mistral, {
      architectures: ['MistralForCausalLM'],
      model_type: 'mistral',
      vocab_size: 200,
      hidden_size: 32,
      intermediate_size: 48,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      hidden_act: 'silu',
      max_position_embeddings: 32768,
      rms_norm_eps: 1e-5,
      rope_theta: 1e6,
      sliding_window: 16,
      tie_word_embeddings: false,
      torch_dtype: 'float16',
      bos_token_id: 1,
      eos_token_id: 2,
    });

    const mixtralDir = await tempDir(t, 'make-config-mixtral');
    await makeModel({ ...MIXTRAL, dtype: 'bf16', seed: 1, outDir: mixtralDir, ropeTheta: 10000 });
    const mixtral = JSON.parse(await readFile(join(mixtralDir, CONFIG_FILE), 'utf8')) as Record<string, unknown>;
    assert.equal(mixtral.model_type, 'mixtral');
    assert.deepEqual(mixtral.architectures, ['MixtralForCausalLM']);
    assert.equal(mixtral.num_local_experts, 4);
    assert.equal(mixtral.num_experts_per_tok, 2);
    assert.equal(mixtral.sliding_window, null);
    assert.equal(mixtral.rope_theta, 10000);
    assert.equal(mixtral.torch_dtype, 'bfloat16');
    assert.equal('head_dim' in mixtral, false);
  });

  test('headDim, when given, is written and shapes the attention projections', async (t) => {
    const outDir = await tempDir(t, 'make-head-dim');
    await makeModel({ ...MISTRAL, headDim: 16, dtype: 'bf16', seed: 1, outDir });
    const ckpt = await Checkpoint.open(outDir);
    assert.equal(ckpt.config.headDim, 16);
    assert.deepEqual(ckpt.entry('model.layers.0.self_attn.q_proj.weight').shape, [64, 32]); // 4 heads x 16
    assert.deepEqual(ckpt.entry('model.layers.0.self_attn.k_proj.weight').shape, [32, 32]); // 2 kv heads x 16
    assert.deepEqual(ckpt.entry('model.layers.0.self_attn.o_proj.weight').shape, [32, 64]);
  });

  for (const dtype of DTYPES) {
    test(`${dtype} matrices are N(0, 0.02^2)-like: mean ~0, std ~0.02, roughly symmetric`, async (t) => {
      const outDir = await tempDir(t, `make-stats-${dtype}`);
      await makeModel({ ...MISTRAL, vocabSize: 4000, dtype, seed: 3, outDir });
      const values = await (await Checkpoint.open(outDir)).readF32(EMBEDDING); // 128000 samples
      assert.ok(Math.abs(mean(values)) < 0.0005, `mean ${mean(values)}`);
      assert.ok(Math.abs(std(values) - 0.02) < 0.0005, `std ${std(values)}`);
      const withinOneStd = values.filter((v) => Math.abs(v) < 0.02).length / values.length;
      assert.ok(Math.abs(withinOneStd - 0.6827) < 0.01, `fraction within one std ${withinOneStd}`);
      assert.ok(new Set(values).size > 1000, 'values should not collapse to a few levels');
    });
  }
});

describe('makeModel is deterministic in its seed', () => {
  async function filesOf(dir: string): Promise<Map<string, Buffer>> {
    const out = new Map<string, Buffer>();
    for (const name of (await readdir(dir)).sort()) out.set(name, await readFile(join(dir, name)));
    return out;
  }

  for (const shape of [MISTRAL, MIXTRAL]) {
    test(`${shape.arch}: same seed gives byte-identical files, another seed different weights`, async (t) => {
      const [a, b, c] = await Promise.all([tempDir(t, 'seed-a'), tempDir(t, 'seed-b'), tempDir(t, 'seed-c')]);
      await makeModel({ ...shape, dtype: 'bf16', seed: 42, outDir: a, maxShardBytes: SHARD_BYTES });
      await makeModel({ ...shape, dtype: 'bf16', seed: 42, outDir: b, maxShardBytes: SHARD_BYTES });
      await makeModel({ ...shape, dtype: 'bf16', seed: 43, outDir: c, maxShardBytes: SHARD_BYTES });
      const [fa, fb, fc] = await Promise.all([filesOf(a), filesOf(b), filesOf(c)]);
      assert.deepEqual([...fa.keys()], [...fb.keys()]);
      for (const [name, bytes] of fa) assert.ok(bytes.equals(fb.get(name) as Buffer), `${name} differs between equal seeds`);

      // Same layout, so same config, index and sizes; but every matrix differs.
      assert.deepEqual([...fa.keys()], [...fc.keys()]);
      assert.ok((fa.get(CONFIG_FILE) as Buffer).equals(fc.get(CONFIG_FILE) as Buffer));
      const ca = await Checkpoint.open(a);
      const cc = await Checkpoint.open(c);
      for (const spec of stageTensorSpecs(ca.config, 0, shape.numLayers)) {
        const same = (await ca.readRaw(spec.name)).bytes;
        const other = (await cc.readRaw(spec.name)).bytes;
        if (spec.shape.length === 1) assert.deepEqual(same, other, spec.name);
        else assert.notDeepEqual(same, other, spec.name);
      }
    });
  }

  test('seeds beyond 32 bits are honoured, and tensors of equal shape differ from each other', async (t) => {
    const [a, b] = await Promise.all([tempDir(t, 'seed-big-a'), tempDir(t, 'seed-big-b')]);
    await makeModel({ ...MISTRAL, dtype: 'bf16', seed: 2 ** 40, outDir: a });
    await makeModel({ ...MISTRAL, dtype: 'bf16', seed: 2 ** 40 + 2 ** 32, outDir: b });
    const ca = await Checkpoint.open(a);
    const cb = await Checkpoint.open(b);
    const q0 = 'model.layers.0.self_attn.q_proj.weight';
    assert.notDeepEqual((await ca.readRaw(q0)).bytes, (await cb.readRaw(q0)).bytes);
    assert.notDeepEqual((await ca.readRaw(q0)).bytes, (await ca.readRaw('model.layers.1.self_attn.q_proj.weight')).bytes);
  });
});

describe('makeModel validates its options', () => {
  const base: MakeModelOptions = { ...MISTRAL, dtype: 'bf16', seed: 1, outDir: '' };
  const cases: { name: string; change: Partial<Record<keyof MakeModelOptions, unknown>>; mentions: string }[] = [
    { name: 'zero hiddenSize', change: { hiddenSize: 0 }, mentions: 'hiddenSize must be a positive integer' },
    { name: 'fractional numLayers', change: { numLayers: 1.5 }, mentions: 'numLayers must be a positive integer' },
    { name: 'negative vocabSize', change: { vocabSize: -1 }, mentions: 'vocabSize' },
    { name: 'missing intermediateSize', change: { intermediateSize: undefined }, mentions: 'intermediateSize' },
    { name: 'heads not a multiple of kv heads', change: { numKvHeads: 3 }, mentions: 'not a multiple of numKvHeads' },
    { name: 'hidden not divisible by heads', change: { hiddenSize: 30 }, mentions: 'not divisible by numHeads' },
    { name: 'odd derived head dim', change: { hiddenSize: 36 }, mentions: 'head dim 9 must be even' },
    { name: 'odd given head dim', change: { headDim: 7 }, mentions: 'head dim 7 must be even' },
    { name: 'experts on mistral', change: { numExperts: 4, expertsPerToken: 2 }, mentions: 'mixtral" only' },
    { name: 'mixtral without experts', change: { arch: 'mixtral' }, mentions: 'numExperts must be a positive integer' },
    { name: 'more experts per token than experts', change: { arch: 'mixtral', numExperts: 2, expertsPerToken: 3 }, mentions: 'exceeds numExperts' },
    { name: 'sliding window 0', change: { slidingWindow: 0 }, mentions: 'slidingWindow' },
    { name: 'unknown arch', change: { arch: 'llama' }, mentions: 'arch must be' },
    { name: 'unknown dtype', change: { dtype: 'f8' }, mentions: 'dtype must be one of bf16, f16, f32' },
    { name: 'NaN seed', change: { seed: Number.NaN }, mentions: 'seed must be a safe integer' },
    { name: 'zero maxShardBytes', change: { maxShardBytes: 0 }, mentions: 'maxShardBytes' },
    { name: 'negative ropeTheta', change: { ropeTheta: -1 }, mentions: 'ropeTheta' },
  ];
  for (const c of cases) {
    test(`rejects ${c.name} before touching the disk`, async (t) => {
      const outDir = join(await tempDir(t, 'make-invalid'), 'out');
      const opts = { ...base, outDir, ...c.change } as MakeModelOptions;
      const err = await rejection(makeModel(opts), InvalidArgumentError);
      assert.ok(err.message.startsWith('makeModel: ') && err.message.includes(c.mentions), err.message);
      await assert.rejects(stat(outDir), { code: 'ENOENT' });
    });
  }

  test('refuses an outDir that already holds a checkpoint', async (t) => {
    const outDir = await tempDir(t, 'make-twice');
    await makeModel({ ...base, outDir });
    const err = await rejection(makeModel({ ...base, outDir, seed: 2 }), InvalidArgumentError);
    assert.ok(err.message.includes('already holds checkpoint weights'), err.message);
  });
});
