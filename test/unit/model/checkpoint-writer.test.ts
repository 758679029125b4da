import assert from 'node:assert/strict';
import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { InvalidArgumentError } from '../../../common/errors';
import { CONFIG_FILE, INDEX_FILE, SINGLE_FILE } from '../../../common/model/checkpoint';
import {
  encodeHeaderForLayout,
  planShards,
  shardFileName,
  tensorByteLength,
  writeCheckpoint,
  type TensorLayout,
  type TensorSource,
} from '../../../common/model/checkpoint-writer';
import { readSafetensorsHeader, readTensorBytes } from '../../../common/model/safetensors';
import { rejection, tempDir } from '../../support/checkpoints';

const CONFIG = { model_type: 'mistral', note: 'not parsed by the writer' };

/** Deterministic bytes for a tensor: byte i is (seed + i) mod 251. */
function pattern(byteLength: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: byteLength }, (_, i) => (seed + i) % 251);
}

function layout(name: string, shape: number[], dtype: TensorLayout['dtype'] = 'BF16'): TensorLayout {
  return { name, shape, dtype };
}

describe('planShards', () => {
  const tensors = [layout('a', [100]), layout('b', [300]), layout('c', [50], 'F32'), layout('d', [10])]; // 200, 600, 200, 20 bytes

  const cases: { max: number | undefined; expect: string[][] }[] = [
    { max: undefined, expect: [['a', 'b', 'c', 'd']] },
    { max: 1020, expect: [['a', 'b', 'c', 'd']] }, // exactly fits: still one file
    { max: 1000, expect: [['a', 'b', 'c'], ['d']] },
    { max: 800, expect: [['a', 'b'], ['c', 'd']] },
    { max: 400, expect: [['a'], ['b'], ['c', 'd']] }, // b (600) exceeds the max: a shard of its own
    { max: 1, expect: [['a'], ['b'], ['c'], ['d']] },
  ];
  for (const c of cases) {
    test(`maxShardBytes ${c.max}`, () => {
      const plan = planShards(tensors, c.max);
      assert.deepEqual(
        plan.map((s) => s.tensors.map((t) => t.name)),
        c.expect,
      );
      if (plan.length === 1) assert.equal(plan[0].file, SINGLE_FILE);
      else assert.deepEqual(plan.map((s) => s.file), plan.map((_, i) => shardFileName(i, plan.length)));
      for (const s of plan) assert.equal(s.dataBytes, s.tensors.reduce((sum, t) => sum + tensorByteLength(t), 0));
    });
  }

  test('shard names follow the hub convention', () => {
    assert.equal(shardFileName(0, 3), 'model-00001-of-00003.safetensors');
    assert.equal(shardFileName(11, 12), 'model-00012-of-00012.safetensors');
  });

  test('rejects a non-positive or fractional maxShardBytes', () => {
    for (const max of [0, -5, 1.5, Number.NaN]) {
      assert.throws(() => planShards(tensors, max), InvalidArgumentError, String(max));
    }
  });
});

describe('encodeHeaderForLayout', () => {
  test('pads the header so the data section starts 8-byte aligned', () => {
    const tensors = [layout('x', [3, 5]), layout('y', [7], 'F32'), layout('z', [0, 4], 'F16')];
    assert.equal(encodeHeaderForLayout(tensors).byteLength % 8, 0);
  });

  test('refuses a tensor named __metadata__', () => {
    assert.throws(() => encodeHeaderForLayout([layout('__metadata__', [1])]), InvalidArgumentError);
  });
});

describe('writeCheckpoint', () => {
  /** Tensors whose bytes come in every form the writer accepts. */
  function mixedSources(): TensorSource[] {
    return [
      { ...layout('eager', [4, 8]), data: pattern(64, 1) },
      { ...layout('lazy', [16], 'F32'), data: () => pattern(64, 2) },
      { ...layout('lazy-async', [3, 3], 'F16'), data: async () => pattern(18, 3) },
      {
        ...layout('chunked', [10, 10]),
        data: function* () {
          const all = pattern(200, 4);
          for (let at = 0; at < 200; at += 30) yield all.subarray(at, Math.min(200, at + 30));
        },
      },
      {
        ...layout('async-chunked', [5]),
        data: async function* () {
          yield pattern(10, 5).subarray(0, 4);
          await new Promise((resolve) => setImmediate(resolve));
          yield pattern(10, 5).subarray(4);
        },
      },
      { ...layout('empty', [0, 3]), data: new Uint8Array(0) },
    ];
  }
  const EXPECTED: Record<string, Uint8Array> = {
    eager: pattern(64, 1),
    lazy: pattern(64, 2),
    'lazy-async': pattern(18, 3),
    chunked: pattern(200, 4),
    'async-chunked': pattern(10, 5),
    empty: new Uint8Array(0),
  };

  async function readAll(dir: string, files: readonly string[]): Promise<Map<string, Uint8Array>> {
    const out = new Map<string, Uint8Array>();
    for (const file of files.filter((f) => f.endsWith('.safetensors'))) {
      for (const [name, entry] of await readSafetensorsHeader(join(dir, file))) out.set(name, await readTensorBytes(entry));
    }
    return out;
  }

  test('one file: config.json and model.safetensors, every tensor byte-exact', async (t) => {
    const dir = await tempDir(t, 'writer-single');
    const written = await writeCheckpoint(dir, mixedSources(), { config: CONFIG });
    assert.deepEqual(written.files, [SINGLE_FILE, CONFIG_FILE]);
    assert.deepEqual((await readdir(dir)).sort(), [CONFIG_FILE, SINGLE_FILE]);
    assert.equal(written.tensorBytes, 64 + 64 + 18 + 200 + 10);
    assert.equal(written.fileBytes, (await stat(join(dir, SINGLE_FILE))).size);
    assert.deepEqual(JSON.parse(await readFile(join(dir, CONFIG_FILE), 'utf8')), CONFIG);
    const tensors = await readAll(dir, written.files);
    assert.deepEqual(Object.fromEntries(tensors), EXPECTED);
    const header = await readSafetensorsHeader(join(dir, SINGLE_FILE));
    assert.deepEqual(header.get('lazy-async')?.shape, [3, 3]);
    assert.equal(header.get('lazy-async')?.dtype, 'F16');
  });

  test('shards: index with total_size and a complete weight_map, no shard over the limit', async (t) => {
    const dir = await tempDir(t, 'writer-sharded');
    const written = await writeCheckpoint(dir, mixedSources(), { config: CONFIG, maxShardBytes: 128 });
    const shards = written.files.filter((f) => f.endsWith('.safetensors'));
    assert.deepEqual(shards, ['model-00001-of-00004.safetensors', 'model-00002-of-00004.safetensors', 'model-00003-of-00004.safetensors', 'model-00004-of-00004.safetensors']);
    assert.deepEqual(written.files.slice(-2), [INDEX_FILE, CONFIG_FILE]);
    const index = JSON.parse(await readFile(join(dir, INDEX_FILE), 'utf8')) as { metadata: { total_size: number }; weight_map: Record<string, string> };
    assert.equal(index.metadata.total_size, 356);
    assert.deepEqual(Object.keys(index.weight_map).sort(), Object.keys(EXPECTED).sort());
    const tensors = await readAll(dir, written.files);
    assert.deepEqual(Object.fromEntries(tensors), EXPECTED);
    for (const shard of shards) {
      const header = await readSafetensorsHeader(join(dir, shard));
      const dataBytes = [...header.values()].reduce((sum, e) => sum + e.byteLength, 0);
      assert.ok(dataBytes <= 128 || header.size === 1, `${shard} holds ${dataBytes} bytes`);
      for (const name of header.keys()) assert.equal(index.weight_map[name], shard);
    }
  });

  test('data shorter than the shape: names the tensor, leaves no partial files or config', async (t) => {
    const dir = await tempDir(t, 'writer-short');
    const sources: TensorSource[] = [{ ...layout('ok', [2]), data: pattern(4, 0) }, { ...layout('short', [4, 4]), data: () => [pattern(30, 0)] }];
    const err = await rejection(writeCheckpoint(dir, sources, { config: CONFIG }), InvalidArgumentError);
    assert.equal(err.message, 'tensor short: shape [4, 4] of BF16 needs 32 bytes, the data has 30');
    assert.deepEqual(await readdir(dir), []);
  });

  test('data longer than the shape: names the tensor', async (t) => {
    const dir = await tempDir(t, 'writer-long');
    const sources: TensorSource[] = [{ ...layout('long', [4]), data: () => [pattern(6, 0), pattern(6, 0)] }];
    const err = await rejection(writeCheckpoint(dir, sources, { config: CONFIG }), InvalidArgumentError);
    assert.equal(err.message, 'tensor long: shape [4] of BF16 needs 8 bytes, the data has more');
    assert.deepEqual(await readdir(dir), []);
  });

  test('a producer that throws: the error propagates, no partial files remain', async (t) => {
    const dir = await tempDir(t, 'writer-throws');
    const boom = new Error('generator failed');
    const sources: TensorSource[] = [
      {
        ...layout('t', [1000]),
        data: function* () {
          yield pattern(1000, 0);
          throw boom;
        },
      },
    ];
    const err = await rejection(writeCheckpoint(dir, sources, { config: CONFIG }), Error);
    assert.equal(err, boom);
    assert.deepEqual(await readdir(dir), []);
  });

  test('refuses a directory that already holds weights', async (t) => {
    const dir = await tempDir(t, 'writer-existing');
    await writeFile(join(dir, 'model-00001-of-00002.safetensors'), 'stale');
    const err = await rejection(writeCheckpoint(dir, mixedSources(), { config: CONFIG }), InvalidArgumentError);
    assert.ok(err.message.includes('already holds checkpoint weights (model-00001-of-00002.safetensors)'), err.message);
  });

  test('writes into a directory with other files, creating it if needed', async (t) => {
    const parent = await tempDir(t, 'writer-nested');
    const dir = join(parent, 'a', 'b');
    await writeCheckpoint(dir, mixedSources().slice(0, 1), { config: CONFIG });
    assert.deepEqual((await readdir(dir)).sort(), [CONFIG_FILE, SINGLE_FILE]);
  });

  test('refuses a repeated tensor name and a bad shape before writing anything', async (t) => {
    const dir = join(await tempDir(t, 'writer-dup'), 'out');
    const twice: TensorSource[] = [
      { ...layout('x', [1]), data: pattern(2, 0) },
      { ...layout('x', [1]), data: pattern(2, 0) },
    ];
    const dup = await rejection(writeCheckpoint(dir, twice, { config: CONFIG }), InvalidArgumentError);
    assert.equal(dup.message, 'tensor x is given twice');
    const badShape = await rejection(writeCheckpoint(dir, [{ ...layout('y', [2, -1]), data: pattern(0, 0) }], { config: CONFIG }), InvalidArgumentError);
    assert.equal(badShape.message, 'tensor y: shape [2, -1] must hold non-negative integers');
    await assert.rejects(stat(dir), { code: 'ENOENT' });
  });
});
