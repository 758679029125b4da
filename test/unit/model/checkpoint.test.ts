import assert from 'node:assert/strict';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { CheckpointError } from '../../../common/errors';
import { Checkpoint, INDEX_FILE, SINGLE_FILE } from '../../../common/model/checkpoint';
import { elementCount, readSafetensorsHeader } from '../../../common/model/safetensors';
import { attentionSpecs, stageTensorSpecs } from '../../../common/model/weights';
import {
  copyFixture,
  fixtureDir,
  rejection,
  shardedCopy,
  tempDir,
  truncatedCopy,
  withHeaderLength,
  withIndexText,
  withMissingShard,
  withoutTensor,
  withTensorDtype,
  withTensorShape,
  type FixtureName,
} from '../../support/checkpoints';

const FIXTURES: readonly FixtureName[] = ['tiny-mistral', 'tiny-mixtral'];

describe('Checkpoint on the reference fixtures', () => {
  for (const name of FIXTURES) {
    test(`${name}: every tensor of stageTensorSpecs reads with its expected shape, and nothing else is stored`, async () => {
      const ckpt = await Checkpoint.open(fixtureDir(name));
      const specs = stageTensorSpecs(ckpt.config, 0, ckpt.config.numLayers);
      for (const spec of specs) {
        const raw = await ckpt.readRaw(spec.name, spec.shape);
        assert.equal(raw.dtype, 'BF16');
        assert.deepEqual(raw.shape, spec.shape);
        const values = await ckpt.readF32(spec.name, spec.shape);
        assert.equal(values.length, elementCount(spec.shape), spec.name);
        assert.ok(values.every(Number.isFinite), `${spec.name} holds a non-finite value`);
      }
      assert.deepEqual(ckpt.tensorNames.sort(), specs.map((s) => s.name).sort());
    });
  }

  test('a sharded copy reads exactly the same bytes as the single file', async (t) => {
    const single = await Checkpoint.open(fixtureDir('tiny-mixtral'));
    const dir = await shardedCopy(t, 'tiny-mixtral');
    const sharded = await Checkpoint.open(dir);
    const shardFiles = new Set(sharded.tensorNames.map((n) => sharded.entry(n).file));
    assert.ok(shardFiles.size > 1, 'the copy should span several shards');
    assert.deepEqual(sharded.tensorNames.sort(), single.tensorNames.sort());
    for (const name of single.tensorNames) {
      assert.deepEqual((await sharded.readRaw(name)).bytes, (await single.readRaw(name)).bytes, name);
    }
  });
});

describe('Checkpoint faults name the file and the tensor', () => {
  const Q2 = 'model.layers.2.self_attn.q_proj.weight';
  const K1 = 'model.layers.1.self_attn.k_proj.weight';

  test('missing tensor: open succeeds, reading it names the tensor', async (t) => {
    const dir = await withoutTensor(t, 'tiny-mistral', Q2);
    const ckpt = await Checkpoint.open(dir);
    assert.equal(ckpt.has(Q2), false);
    const err = await rejection(ckpt.readRaw(Q2, attentionSpecs(ckpt.config, 2).q.shape), CheckpointError);
    assert.equal(err.tensor, Q2);
    assert.equal(err.message, `${dir}: tensor ${Q2}: missing from the checkpoint`);
  });

  test('misshaped tensor: names the tensor and both shapes', async (t) => {
    const dir = await withTensorShape(t, 'tiny-mistral', K1, [64, 32]);
    const ckpt = await Checkpoint.open(dir);
    const expected = attentionSpecs(ckpt.config, 1).k.shape;
    assert.deepEqual(expected, [32, 64]);
    const err = await rejection(ckpt.readF32(K1, expected), CheckpointError);
    assert.equal(err.message, `${join(dir, SINGLE_FILE)}: tensor ${K1}: shape [64, 32] does not match the expected [32, 64]`);
  });

  for (const dtype of ['I8', 'F8_E4M3']) {
    test(`unknown dtype ${dtype}: open succeeds, reading names file, tensor and dtype`, async (t) => {
      const dir = await withTensorDtype(t, 'tiny-mistral', K1, dtype);
      const ckpt = await Checkpoint.open(dir);
      const err = await rejection(ckpt.readF32(K1), CheckpointError);
      assert.equal(err.file, join(dir, SINGLE_FILE));
      assert.equal(err.tensor, K1);
      assert.ok(err.message.startsWith(`${join(dir, SINGLE_FILE)}: tensor ${K1}: unsupported dtype ${dtype}`), err.message);
      // Other tensors of the same file still read.
      assert.equal((await ckpt.readF32(Q2)).length, 64 * 64);
    });
  }

  test('truncated file: open fails naming the file and a tensor whose data is cut off', async (t) => {
    const original = await readSafetensorsHeader(join(fixtureDir('tiny-mistral'), SINGLE_FILE));
    const dir = await truncatedCopy(t, 'tiny-mistral', 4096);
    const truncatedBytes = (await stat(join(dir, SINGLE_FILE))).size;
    const err = await rejection(Checkpoint.open(dir), CheckpointError);
    assert.equal(err.file, join(dir, SINGLE_FILE));
    assert.ok(err.message.startsWith(join(dir, SINGLE_FILE)) && err.message.includes('truncated'), err.message);
    const cut = original.get(err.tensor ?? '');
    assert.ok(cut !== undefined && cut.fileOffset + cut.byteLength > truncatedBytes, `${err.tensor} is not cut off`);
  });

  test('file shorter than the 8-byte length field', async (t) => {
    const dir = await copyFixture(t, 'tiny-mistral');
    await writeFile(join(dir, SINGLE_FILE), Buffer.from([1, 2, 3]));
    const err = await rejection(Checkpoint.open(dir), CheckpointError);
    assert.equal(err.message, `${join(dir, SINGLE_FILE)}: truncated: 3 bytes, too short for a safetensors header`);
  });

  for (const [label, length, fragment] of [
    ['larger than the file', 2n ** 40n, 'header length 1099511627776 does not fit'],
    ['near 2^64', 2n ** 64n - 1n, 'does not fit'],
    ['zero', 0n, 'header is not valid JSON'],
    ['cutting the JSON short', 100n, 'header is not valid JSON'],
  ] as const) {
    test(`header length garbage (${label}): open fails naming the file`, async (t) => {
      const dir = await withHeaderLength(t, 'tiny-mistral', length);
      const err = await rejection(Checkpoint.open(dir), CheckpointError);
      assert.equal(err.file, join(dir, SINGLE_FILE));
      assert.ok(err.message.includes(fragment), err.message);
    });
  }

  test('bad index JSON: open fails naming the index', async (t) => {
    const dir = await withIndexText(t, 'tiny-mistral', '{"weight_map": {');
    const err = await rejection(Checkpoint.open(dir), CheckpointError);
    assert.equal(err.file, join(dir, INDEX_FILE));
    assert.ok(err.message.startsWith(`${join(dir, INDEX_FILE)}: not valid JSON`), err.message);
  });

  test('index without a weight_map', async (t) => {
    const dir = await withIndexText(t, 'tiny-mistral', '{"metadata": {}}');
    const err = await rejection(Checkpoint.open(dir), CheckpointError);
    assert.equal(err.message, `${join(dir, INDEX_FILE)}: has no "weight_map" object`);
  });

  test('index naming a path instead of a file name', async (t) => {
    const dir = await shardedCopy(t, 'tiny-mistral');
    const index = JSON.parse(await readFile(join(dir, INDEX_FILE), 'utf8')) as { weight_map: Record<string, string> };
    index.weight_map[Q2] = '../elsewhere.safetensors';
    await writeFile(join(dir, INDEX_FILE), JSON.stringify(index));
    const err = await rejection(Checkpoint.open(dir), CheckpointError);
    assert.equal(err.tensor, Q2);
    assert.ok(err.message.includes('is not a file name'), err.message);
  });

  test('index pointing at a missing shard: open fails naming the shard', async (t) => {
    const { dir, missingShard } = await withMissingShard(t, 'tiny-mistral');
    const err = await rejection(Checkpoint.open(dir), CheckpointError);
    assert.equal(err.file, join(dir, missingShard));
    assert.ok(err.message.startsWith(`${join(dir, missingShard)}: cannot open (ENOENT)`), err.message);
  });

  test('index listing a tensor its shard lacks', async (t) => {
    const dir = await shardedCopy(t, 'tiny-mistral');
    const index = JSON.parse(await readFile(join(dir, INDEX_FILE), 'utf8')) as { weight_map: Record<string, string> };
    const shardOfQ2 = index.weight_map[Q2];
    const other = Object.values(index.weight_map).find((s) => s !== shardOfQ2) as string;
    index.weight_map[Q2] = other;
    await writeFile(join(dir, INDEX_FILE), JSON.stringify(index));
    const err = await rejection(Checkpoint.open(dir), CheckpointError);
    assert.equal(err.message, `${join(dir, other)}: tensor ${Q2}: listed in ${INDEX_FILE} but not in this shard`);
  });

  test('a directory without weights', async (t) => {
    const dir = await copyFixture(t, 'tiny-mistral');
    const empty = await tempDir(t, 'no-weights');
    await writeFile(join(empty, 'config.json'), await readFile(join(dir, 'config.json')));
    const err = await rejection(Checkpoint.open(empty), CheckpointError);
    assert.equal(err.message, `${empty}: holds neither ${SINGLE_FILE} nor ${INDEX_FILE}`);
  });
});
