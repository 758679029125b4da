import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CheckpointError, FailedPreconditionError, InvalidArgumentError } from '../../../common/errors';
import { type StorageDtype, toFloat32 } from '../../../common/model/dtype';
import { CpuPool } from '../../../coordinator/cpu-pool';
import { firstBitMismatch } from '../../support/bits';
import { fixtureDir } from '../../support/checkpoints';
import { type SamplingParams, sampleToken } from '../../../common/sampling/sampler';
import { loadTokenizer } from '../../../common/tokenizer/load-tokenizer';

/** Deterministic test data: mulberry32. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomLogits(rows: number, vocab: number, seed: number): Float32Array {
  const next = random(seed);
  const logits = new Float32Array(rows * vocab); // (rows, vocab)
  for (let i = 0; i < logits.length; i++) logits[i] = (next() - 0.5) * 12;
  return logits;
}

const ALL_16_BIT_BYTES = new Uint8Array(Uint16Array.from({ length: 65536 }, (_, i) => i).buffer);

describe('CpuPool', () => {
  let pool: CpuPool;
  before(async () => {
    pool = await CpuPool.create();
  });
  after(async () => {
    await pool.close();
  });

  test('starts one thread by default', () => {
    assert.equal(pool.threads, 1);
  });

  describe('widen', () => {
    for (const dtype of ['BF16', 'F16'] as const) {
      test(`${dtype}: every 16-bit pattern equals the in-thread conversion bit for bit`, async () => {
        const expected = toFloat32(ALL_16_BIT_BYTES, dtype);
        const got = await pool.widen(ALL_16_BIT_BYTES.slice(), dtype);
        assert.equal(got.length, 65536);
        assert.equal(firstBitMismatch(got, expected), -1);
      });
    }

    test('F32: random bit patterns (NaN payloads included) come back unchanged', async () => {
      const next = random(7);
      const bits = Uint32Array.from({ length: 100_000 }, () => Math.floor(next() * 2 ** 32));
      bits[0] = 0x7fa00001; // a signalling-NaN payload
      const bytes = new Uint8Array(bits.buffer);
      const expected = toFloat32(bytes, 'F32');
      const got = await pool.widen(bytes, 'F32');
      assert.equal(firstBitMismatch(got, expected), -1);
    });

    test('a buffer the view spans is transferred (detached here), not copied', async () => {
      const bytes = ALL_16_BIT_BYTES.slice();
      const got = await pool.widen(bytes, 'BF16');
      assert.equal(bytes.byteLength, 0, 'the caller no longer holds the bytes');
      assert.equal(got.buffer.byteLength, got.byteLength, 'the result owns its whole buffer');
      assert.equal(firstBitMismatch(got, toFloat32(ALL_16_BIT_BYTES, 'BF16')), -1);
    });

    test('a view into a larger buffer (odd offset) is copied, and the larger buffer is left intact', async () => {
      for (const dtype of ['BF16', 'F16', 'F32'] as StorageDtype[]) {
        const file = new Uint8Array(4099).map((_, i) => (i * 37) & 0xff);
        const before = file.slice();
        const view = file.subarray(3, 3 + 4 * 1000);
        const got = await pool.widen(view, dtype);
        assert.equal(file.byteLength, 4099, `${dtype}: not detached`);
        assert.deepEqual(file, before, `${dtype}: not modified`);
        assert.equal(firstBitMismatch(got, toFloat32(view, dtype)), -1, dtype);
      }
    });

    test('shared memory is read in place and the result does not alias it', async () => {
      const shared = new Uint8Array(new SharedArrayBuffer(4 * 256));
      shared.set(new Uint8Array(Float32Array.from({ length: 256 }, (_, i) => i * 0.5).buffer));
      const got = await pool.widen(shared, 'F32');
      assert.equal(shared.byteLength, 1024);
      assert.equal(got[3], 1.5);
      shared.fill(0);
      assert.equal(got[3], 1.5, 'the result is a copy, not a view of the shared memory');
    });

    test('a byte count that is not whole values, or an unknown dtype, is an InvalidArgumentError', async () => {
      await assert.rejects(pool.widen(new Uint8Array(3), 'BF16'), InvalidArgumentError);
      await assert.rejects(pool.widen(new Uint8Array(6), 'F32'), InvalidArgumentError);
      await assert.rejects(pool.widen(new Uint8Array(4), 'F8' as StorageDtype), InvalidArgumentError);
    });
  });

  describe('sampling', () => {
    const VOCAB = 32000;
    const PARAMS: SamplingParams[] = [
      { kind: 'greedy' },
      { kind: 'random', temperature: 0.7, topK: 40, topP: 1, seed: 42n },
      { kind: 'random', temperature: 1, topK: 0, topP: 0.9, seed: (1n << 64n) - 1n },
      { kind: 'random', temperature: 1, topK: 0, topP: 1, seed: 7 },
      { kind: 'random', temperature: 1.3, topK: 5, topP: 0.5, seed: (1n << 63n) + 1n },
      { kind: 'greedy' },
    ];
    const STEPS = [0, 1, 17, 1000, 5, 3];

    test('sampleBatch equals sampleToken row by row (greedy and seeded random)', async () => {
      for (const seed of [1, 2, 3]) {
        const logits = randomLogits(PARAMS.length, VOCAB, seed);
        const before = logits.slice();
        const expected = PARAMS.map((p, r) => sampleToken(logits.subarray(r * VOCAB, (r + 1) * VOCAB), p, STEPS[r]));
        const got = await pool.sampleBatch(logits, PARAMS.length, PARAMS, STEPS);
        assert.deepEqual(got, expected, `logits seed ${seed}`);
        assert.deepEqual(logits, before, 'the caller keeps its logits');
      }
    });

    test('sample equals sampleToken over many steps', async () => {
      const logits = randomLogits(1, VOCAB, 9);
      for (const params of PARAMS) {
        for (let step = 0; step < 8; step++) {
          assert.equal(await pool.sample(logits, params, step), sampleToken(logits, params, step));
        }
      }
    });

    test('a bigint seed crosses the thread boundary with all 64 bits', async () => {
      // Two seeds that are the same float64: a lossy conversion anywhere would merge them.
      const a = (1n << 63n) + 1n;
      const b = (1n << 63n) + 2n;
      assert.equal(Number(a), Number(b));
      assert.deepEqual(structuredClone({ seed: a }), { seed: a });
      const logits = new Float32Array(1000); // flat: each draw is ~uniform over 1000 tokens
      const pa: SamplingParams = { kind: 'random', temperature: 1, topK: 0, topP: 1, seed: a };
      const pb: SamplingParams = { ...pa, seed: b };
      const steps = Array.from({ length: 16 }, (_, i) => i);
      const expectA = steps.map((s) => sampleToken(logits, pa, s));
      const expectB = steps.map((s) => sampleToken(logits, pb, s));
      assert.notDeepEqual(expectA, expectB, 'the seeds draw different tokens in-thread');
      const batch = new Float32Array(steps.length * 1000); // (16, 1000) of zeros
      assert.deepEqual(await pool.sampleBatch(batch, steps.length, steps.map(() => pa), steps), expectA);
      assert.deepEqual(await pool.sampleBatch(batch, steps.length, steps.map(() => pb), steps), expectB);
    });

    test("the thread's InvalidArgumentError arrives with its class, code and thread stack", async () => {
      const bad: SamplingParams = { kind: 'random', temperature: 0, topK: 0, topP: 1, seed: 1n };
      const err = await pool.sample(new Float32Array(10), bad, 0).then(
        () => assert.fail('sampling with temperature 0 must fail'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof InvalidArgumentError);
      assert.equal(err.code, 'INVALID_ARGUMENT');
      assert.equal(err.retryable, false);
      assert.match(err.message, /temperature/);
      assert.match(err.stack ?? '', /sampler/, 'the stack points into the sampler on the thread');
      assert.equal(await pool.sample(Float32Array.of(0, 2, 1), { kind: 'greedy' }, 0), 1, 'the pool still works');
    });

    test('shape mismatches are refused before crossing', async () => {
      const logits = new Float32Array(10);
      await assert.rejects(pool.sampleBatch(logits, 3, [], []), InvalidArgumentError);
      await assert.rejects(pool.sampleBatch(logits, 2, [{ kind: 'greedy' }], [0, 0]), InvalidArgumentError);
      await assert.rejects(pool.sampleBatch(logits, 0, [], []), InvalidArgumentError);
      await assert.rejects(pool.sample(new Float32Array(0), { kind: 'greedy' }, 0), InvalidArgumentError);
    });
  });

  describe('encode', () => {
    const modelDir = fixtureDir('tiny-mistral');
    const ids = { bosTokenId: 1, eosTokenId: 2 };

    test('the reference prompt encodes exactly (built-in Mistral v0.1 vocabulary)', async () => {
      assert.equal(existsSync(join(modelDir, 'tokenizer.json')), false, 'the fixture relies on the built-in vocabulary');
      assert.deepEqual(await pool.encode(modelDir, 'The capital of France is', ids), [1, 415, 5565, 302, 4843, 349]);
    });

    test('equals the in-thread tokenizer, with and without BOS', async () => {
      const tokenizer = await loadTokenizer(modelDir, ids);
      for (const text of ['', 'Hello, wörld € 你好', '[INST] Write a haiku about etcd leases. [/INST]', '  two  spaces']) {
        assert.deepEqual(await pool.encode(modelDir, text, ids), tokenizer.encode(text), text);
        assert.deepEqual(
          await pool.encode(modelDir, text, ids, { addBos: false }),
          tokenizer.encode(text, { addBos: false }),
          text,
        );
      }
    });

    test("a CheckpointError from the thread keeps its class and file", async () => {
      const err = await pool.encode(modelDir, 'x', { bosTokenId: 5, eosTokenId: 2 }).then(
        () => assert.fail('a bos id the vocabulary does not have must fail'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof CheckpointError);
      assert.equal(err.file, join(modelDir, 'config.json'));
      assert.equal(err.message.split(`${err.file}: `).length, 2, 'the file is named once');
    });
  });
});

describe('CpuPool lifecycle', () => {
  test('threads must be an integer >= 1', async () => {
    await assert.rejects(CpuPool.create({ threads: 0 }), InvalidArgumentError);
    await assert.rejects(CpuPool.create({ threads: 1.5 }), InvalidArgumentError);
  });

  test('two threads give the same answers to concurrent calls', async () => {
    const pool = await CpuPool.create({ threads: 2 });
    try {
      const logits = randomLogits(8, 4000, 11);
      const params: SamplingParams = { kind: 'random', temperature: 0.9, topK: 0, topP: 0.95, seed: 123n };
      const rows = Array.from({ length: 8 }, (_, r) => logits.subarray(r * 4000, (r + 1) * 4000));
      const got = await Promise.all(rows.map((row, r) => pool.sample(row, params, r)));
      assert.deepEqual(got, rows.map((row, r) => sampleToken(row, params, r)));
    } finally {
      await pool.close();
    }
  });

  test('close() lets running work finish, then refuses new work; closing twice is fine', async () => {
    const pool = await CpuPool.create();
    const pending = pool.sample(Float32Array.of(3, 1), { kind: 'greedy' }, 0);
    const closed = pool.close();
    assert.equal(await pending, 0);
    await closed;
    await pool.close();
    await assert.rejects(pool.sample(Float32Array.of(1), { kind: 'greedy' }, 0), FailedPreconditionError);
  });
});
