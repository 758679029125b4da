/**
 * The native decode-time attention against onnxruntime's attention-core graph on the same inputs:
 * sequences with different cache lengths and new-token counts in one batch (padding), a sliding
 * window that hides old positions, grouped-query heads; and bad dims refused.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { buildAttentionBatch, inverseFrequencies } from '../../../common/engine/attention-batch';
import { SequenceCache } from '../../../common/engine/kv-cache';
import { LAYER_IO, attentionCoreGraph } from '../../../common/engine/layer-graphs';
import { createSession, f32Tensor, runF32 } from '../../../common/engine/ort-session';
import { nativeKernels } from '../../../common/kernels/native-kernels';
import type { ModelConfig } from '../../../common/model/config';
import { nativeSkip, seededValues } from '../../support/kernels';

const values = (count: number, seed: number): Float32Array => seededValues(count, seed, 2);

const config = { numHeads: 8, numKvHeads: 2, headDim: 16, slidingWindow: 6, ropeTheta: 10000 } as ModelConfig;

describe('native attention', { skip: nativeSkip }, () => {
  test('matches the attention-core graph for mixed cache lengths, token counts and a sliding window', async () => {
    const { numHeads: A, numKvHeads: K, headDim: D } = config;
    const session = await createSession(attentionCoreGraph(config), { intraOpThreads: 1, allowSpinning: false });
    try {
      for (const [history, fresh] of [[[0, 3, 9], [1, 1, 1]], [[4, 0, 12, 7], [2, 4, 1, 3]], [[20], [1]]]) {
        // Caches with `history` positions each (one layer), then a call adding `fresh` tokens.
        const caches = history.map((n, b) => {
          const cache = new SequenceCache(1, K, D, config.slidingWindow! - 1);
          if (n > 0) {
            const k = values(K * n * D, 10 + b);
            cache.append([k], [values(K * n * D, 20 + b)], 0, n, n);
          }
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
        for (const threads of [1, 2]) {
          const context = new Float32Array(B * T * A * D);
          const newK = new Float32Array(B * K * T * D);
          const newV = new Float32Array(B * K * T * D);
          nativeKernels()!.attention(qkv, batch.cos, batch.sin, batch.mask, pastK, pastV, context, newK, newV, Int32Array.of(B, T, P, A, K, D), threads);
          const close = (a: Float32Array, b: Float32Array, what: string): void => {
            let worst = 0;
            for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
            assert.ok(worst < 1e-5, `${what} differs by ${worst} (history ${history}, new ${fresh}, ${threads} threads)`);
          };
          close(newK, expected[LAYER_IO.newK], 'new keys');
          close(newV, expected[LAYER_IO.newV], 'new values');
          // Padded query rows (t >= a sequence's new tokens) are discarded by the engine.
          for (let b = 0; b < B; b++) {
            const rows = fresh[b] * A * D;
            close(context.subarray(b * T * A * D, b * T * A * D + rows), expected[LAYER_IO.context].subarray(b * T * A * D, b * T * A * D + rows), `context of sequence ${b}`);
          }
        }
      }
    } finally {
      await session.release();
    }
  });

  test('inconsistent dims or arrays throw a RangeError', () => {
    const k = nativeKernels()!;
    const f = (n: number): Float32Array => new Float32Array(n);
    // B=1, T=1, P=0, A=2, K=1, D=4
    const ok = [f(16), f(4), f(4), f(2), f(0), f(0), f(8), f(4), f(4)] as const;
    assert.doesNotThrow(() => k.attention(...ok, Int32Array.of(1, 1, 0, 2, 1, 4), 1));
    assert.throws(() => k.attention(...ok, Int32Array.of(1, 1, 0, 3, 1, 4), 1), RangeError); // wrong sizes for A = 3
    assert.throws(() => k.attention(...ok, Int32Array.of(1, 1, 0, 2, 1), 1), RangeError);
    assert.throws(() => k.attention(f(15), ok[1], ok[2], ok[3], ok[4], ok[5], ok[6], ok[7], ok[8], Int32Array.of(1, 1, 0, 2, 1, 4), 1), RangeError);
  });
});
