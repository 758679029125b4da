/**
 * The native attention over the KV caches in place: against onnxruntime's attention-core graph on
 * the same inputs (sequences with different cache lengths and new-token counts in one batch, a
 * sliding window that hides old positions, grouped-query heads); bit-identical contexts however a
 * sequence's tokens are split into calls or batched (tiles of 16 queries, so calls that cross
 * tile boundaries); and bad arguments refused.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { buildAttentionBatch, inverseFrequencies, type AttentionBatch } from '../../../common/engine/attention-batch';
import { SequenceCache } from '../../../common/engine/kv-cache';
import { LAYER_IO, attentionCoreGraph } from '../../../common/engine/layer-graphs';
import { createSession, f32Tensor, runF32 } from '../../../common/engine/ort-session';
import { rmsNorm } from '../../../common/engine/native-compute';
import { nativeKernels } from '../../../common/kernels/native-kernels';
import type { ModelConfig } from '../../../common/model/config';
import { firstBitMismatch } from '../../support/bits';
import { nativeSkip, seededValues } from '../../support/kernels';

const values = (count: number, seed: number): Float32Array => seededValues(count, seed, 2);

const config = { numHeads: 8, numKvHeads: 2, headDim: 16, slidingWindow: 6, ropeTheta: 10000 } as ModelConfig;

/** Runs the native attention of one layer (cache layer 0) for `batch`, as the engine does; returns the context. */
function nativeAttention(c: ModelConfig, batch: AttentionBatch, qkv: Float32Array, threads: number): Float32Array {
  const { numHeads: A, numKvHeads: K, headDim: D } = c;
  const { batchSize: B, paddedTokens: T } = batch;
  const context = new Float32Array(B * T * A * D);
  batch.rows.forEach(({ cache, tokenCount }) => cache.reserve(tokenCount));
  const storage = batch.rows.map(({ cache }) => cache.layerStorage(0));
  const rows = new Int32Array(batch.rows.flatMap(({ cache, tokenCount }, b) => [cache.length, storage[b].capacity, tokenCount, cache.nextPosition]));
  nativeKernels()!.attention(
    qkv,
    batch.cos,
    batch.sin,
    context,
    storage.map((s) => s.k),
    storage.map((s) => s.v),
    storage.map((s) => s.positions),
    rows,
    Int32Array.of(B, T, A, K, D, c.slidingWindow ?? 0),
    threads,
  );
  batch.rows.forEach(({ cache, tokenCount }) => cache.commit(tokenCount));
  return context;
}

describe('native attention', { skip: nativeSkip }, () => {
  test('matches the attention-core graph for mixed cache lengths, token counts and a sliding window', async () => {
    const { numHeads: A, numKvHeads: K, headDim: D } = config;
    const session = await createSession(attentionCoreGraph(config), { intraOpThreads: 1, allowSpinning: false });
    try {
      for (const [history, fresh] of [[[0, 3, 9], [1, 1, 1]], [[4, 0, 12, 7], [2, 4, 1, 3]], [[20], [1]], [[2, 0], [9, 30]]]) {
        for (const threads of [1, 2]) {
          // Caches with `history` positions each (one layer), then a call adding `fresh` tokens.
          const caches = history.map((n, b) => {
            const cache = new SequenceCache(1, K, D, config.slidingWindow! - 1);
            if (n > 0) cache.append([values(K * n * D, 10 + b)], [values(K * n * D, 20 + b)], 0, n, n);
            return cache;
          });
          const batch = buildAttentionBatch(config, inverseFrequencies(config), caches.map((cache, b) => ({ cache, tokenCount: fresh[b] })));
          const { batchSize: B, paddedTokens: T, paddedSlots: P } = batch;
          const pastK = new Float32Array(B * K * P * D);
          const pastV = new Float32Array(B * K * P * D);
          caches.forEach((cache, b) => cache.copyInto(0, pastK, pastV, b, P));
          const qkv = values(B * T * (A + 2 * K) * D, 7 + B);
          const expected = await runF32(session, {
            [LAYER_IO.qkv]: f32Tensor(qkv, [B, T, (A + 2 * K) * D]),
            [LAYER_IO.cos]: f32Tensor(batch.cos, [B, T, D]),
            [LAYER_IO.sin]: f32Tensor(batch.sin, [B, T, D]),
            [LAYER_IO.mask]: f32Tensor(batch.mask, [B, 1, (A / K) * T, P + T]),
            [LAYER_IO.pastK]: f32Tensor(pastK, [B, K, P, D]),
            [LAYER_IO.pastV]: f32Tensor(pastV, [B, K, P, D]),
          });
          const context = nativeAttention(config, batch, qkv, threads);
          const close = (a: Float32Array, b: Float32Array, what: string): void => {
            assert.equal(a.length, b.length, `${what}: lengths`);
            let worst = 0;
            for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
            assert.ok(worst < 1e-5, `${what} differs by ${worst} (history ${history}, new ${fresh}, ${threads} threads)`);
          };
          for (let b = 0; b < B; b++) {
            // Padded query rows (t >= a sequence's new tokens) are discarded by the engine; the kernel zeroes them.
            const rows = fresh[b] * A * D;
            close(context.subarray(b * T * A * D, b * T * A * D + rows), expected[LAYER_IO.context].subarray(b * T * A * D, b * T * A * D + rows), `context of sequence ${b}`);
            assert.ok(context.subarray(b * T * A * D + rows, (b + 1) * T * A * D).every((x) => x === 0), 'padded rows are zero');
            // The cache now ends with the new keys and values (the last window - 1 slots at most).
            const after = caches[b].snapshot(0, 1);
            const kept = Math.min(fresh[b], after.positions.length);
            for (let h = 0; h < K; h++) {
              const got = after.layers[0].k.subarray((h * after.positions.length + after.positions.length - kept) * D, (h + 1) * after.positions.length * D);
              const want = expected[LAYER_IO.newK].subarray(((b * K + h) * T + fresh[b] - kept) * D, ((b * K + h) * T + fresh[b]) * D);
              close(got, want, `new keys of sequence ${b}, head ${h}`);
              const gotV = after.layers[0].v.subarray((h * after.positions.length + after.positions.length - kept) * D, (h + 1) * after.positions.length * D);
              const wantV = expected[LAYER_IO.newV].subarray(((b * K + h) * T + fresh[b] - kept) * D, ((b * K + h) * T + fresh[b]) * D);
              close(gotV, wantV, `new values of sequence ${b}, head ${h}`);
            }
          }
        }
      }
    } finally {
      await session.release();
    }
  });

  for (const window of [6, null]) {
    test(`bit-identical contexts however tokens are split into calls or batched (sliding window ${window})`, () => {
      const c = { ...config, slidingWindow: window } as ModelConfig;
      const { numHeads: A, numKvHeads: K, headDim: D } = c;
      const width = (A + 2 * K) * D;
      const invFreq = inverseFrequencies(c);
      const lengths = [41, 17, 5];
      // Token t of sequence s always has the same projections, whichever call it is in.
      const qkvOf = (s: number, t: number): Float32Array => values(width, 1000 * (s + 1) + t);

      /** Runs a schedule: calls of [sequence, token count]; returns each sequence's per-token contexts. */
      const run = (calls: readonly (readonly [number, number])[][], threads: number): Float32Array[][] => {
        const caches = lengths.map(() => new SequenceCache(1, K, D, window === null ? Infinity : window - 1));
        const done = lengths.map(() => 0);
        const out: Float32Array[][] = lengths.map(() => []);
        for (const call of calls) {
          const batch = buildAttentionBatch(c, invFreq, call.map(([s, n]) => ({ cache: caches[s], tokenCount: n })));
          const T = batch.paddedTokens;
          const qkv = new Float32Array(call.length * T * width);
          call.forEach(([s, n], b) => {
            for (let t = 0; t < n; t++) qkv.set(qkvOf(s, done[s] + t), (b * T + t) * width);
          });
          const context = nativeAttention(c, batch, qkv, threads);
          call.forEach(([s, n], b) => {
            for (let t = 0; t < n; t++) out[s].push(context.slice((b * T + t) * A * D, (b * T + t + 1) * A * D));
            done[s] += n;
          });
        }
        return out;
      };

      const whole = run([lengths.map((n, s) => [s, n] as const)], 1);
      const alone = run(lengths.map((n, s) => [[s, n] as const]), 2);
      const oneByOne = run(lengths.flatMap((n, s) => Array.from({ length: n }, () => [[s, 1] as const])), 1);
      // Chunks of 7 tokens for sequence 0 (crossing the 16-query tiles: 4 tokens x 4 query heads
      // each), 2 and 3 for the others alongside: tiles of 4, 8, 12 and 16 queries, which run at
      // lane widths 4, 8 and 16.
      const chunked: (readonly [number, number])[][] = [];
      const left = [...lengths];
      while (left.some((n) => n > 0)) {
        const call: (readonly [number, number])[] = [];
        left.forEach((n, s) => {
          const take = Math.min(n, s === 0 ? 7 : s === 1 ? 2 : 3);
          if (take > 0) call.push([s, take]);
          left[s] -= take;
        });
        chunked.push(call);
      }
      const mixed = run(chunked, 2);
      for (const [name, other] of [['alone', alone], ['one token per call', oneByOne], ['chunks batched together', mixed]] as const) {
        lengths.forEach((n, s) => {
          for (let t = 0; t < n; t++) {
            const mismatch = firstBitMismatch(other[s][t], whole[s][t]);
            assert.equal(mismatch, -1, `${name}: sequence ${s}, token ${t} differs at ${mismatch}`);
          }
        });
      }
      // The contexts are not all the same (the check above compared something).
      assert.notDeepEqual(whole[0][0], whole[0][40]);
    });
  }

  test('inconsistent dims or arrays throw a RangeError', () => {
    const k = nativeKernels()!;
    const f = (n: number): Float32Array => new Float32Array(n);
    // B=1, T=1, A=2, K=1, D=4; a cache of capacity 2 holding 1 slot
    const args = (over: Partial<Record<number, unknown>> = {}): Parameters<typeof k.attention> => {
      const base: unknown[] = [f(16), f(4), f(4), f(8), [f(8)], [f(8)], [Int32Array.of(0, 0)], Int32Array.of(1, 2, 1, 1), Int32Array.of(1, 1, 2, 1, 4, 0), 1];
      for (const [i, v] of Object.entries(over)) base[Number(i)] = v;
      return base as Parameters<typeof k.attention>;
    };
    assert.doesNotThrow(() => k.attention(...args()));
    assert.throws(() => k.attention(...args({ 8: Int32Array.of(1, 1, 3, 1, 4, 0) })), RangeError); // wrong sizes for A = 3
    assert.throws(() => k.attention(...args({ 8: Int32Array.of(1, 1, 2, 1, 4) })), RangeError);
    assert.throws(() => k.attention(...args({ 0: f(15) })), RangeError);
    assert.throws(() => k.attention(...args({ 7: Int32Array.of(2, 2, 1, 1) })), RangeError); // no room for the new token
    assert.throws(() => k.attention(...args({ 4: [f(7)] })), RangeError); // storage smaller than K x capacity x D
    assert.throws(() => k.attention(...args({ 5: [] })), RangeError); // no entry for the sequence
    assert.throws(() => k.attention(...args({ 7: Int32Array.of(1, 2, 0, 1) })), RangeError); // no new token
  });
});

describe('native RMSNorm', { skip: nativeSkip }, () => {
  test('gives the same bits as the TypeScript reference, with any thread count', () => {
    const rows = 37;
    const width = 96;
    const x = values(rows * width, 5);
    x[3] = 1e-30; // tiny and large values too
    x[width + 1] = 3e4;
    const weight = values(width, 6);
    const want = rmsNorm(x, rows, weight, 1e-5);
    for (const threads of [1, 2]) {
      const out = new Float32Array(rows * width);
      nativeKernels()!.rmsNorm(x, rows, weight, 1e-5, out, threads);
      assert.equal(firstBitMismatch(out, want), -1, `${threads} threads`);
    }
    assert.throws(() => nativeKernels()!.rmsNorm(x, rows + 1, weight, 1e-5, new Float32Array(rows * width), 1), RangeError);
  });
});
