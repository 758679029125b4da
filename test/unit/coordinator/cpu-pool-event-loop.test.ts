/**
 * The pool's reason to exist: heavy CPU work leaves the event loop free (a worker whose loop
 * blocks for seconds loses its etcd lease). Also reports the pool's costs as test diagnostics.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { bf16ToF32 } from '../../../common/model/dtype';
import { CpuPool } from '../../../coordinator/cpu-pool';
import { firstBitMismatch } from '../../support/bits';
import { type SamplingParams, sampleToken } from '../../../common/sampling/sampler';

const MIB = 1024 * 1024;
const TICK_MS = 5;

/** Records the longest gap between setInterval ticks while `work` runs. */
async function maxTickGapDuring<T>(work: () => Promise<T>): Promise<{ result: T; maxGapMs: number; ticks: number }> {
  let last = performance.now();
  let maxGapMs = 0;
  let ticks = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    maxGapMs = Math.max(maxGapMs, now - last);
    last = now;
    ticks++;
  }, TICK_MS);
  try {
    const result = await work();
    maxGapMs = Math.max(maxGapMs, performance.now() - last);
    return { result, maxGapMs, ticks };
  } finally {
    clearInterval(timer);
  }
}

describe('CpuPool keeps the event loop responsive', () => {
  let pool: CpuPool;
  before(async () => {
    pool = await CpuPool.create();
    await pool.widen(new Uint8Array(2 * MIB), 'BF16'); // warm the thread's conversion loop
  });
  after(async () => {
    await pool.close();
  });

  test('while the pool widens 64 MiB of bf16, a 5 ms interval keeps ticking', async (t) => {
    const count = 32 * MIB; // 64 MiB of bf16 -> 128 MiB of f32
    const halves = new Uint16Array(count);
    for (let i = 0; i < count; i++) halves[i] = Math.imul(i, 0x9e3779b1) >>> 16;
    bf16ToF32(halves.subarray(0, 2 * MIB)); // warm this thread's loop too

    // The same conversion on this thread: the loop is blocked for all of it.
    const inThreadStart = performance.now();
    const expected = bf16ToF32(halves);
    const inThreadMs = performance.now() - inThreadStart;

    const bytes = new Uint8Array(halves.buffer);
    const poolStart = performance.now();
    const { result, maxGapMs, ticks } = await maxTickGapDuring(() => pool.widen(bytes, 'BF16'));
    const poolMs = performance.now() - poolStart;

    t.diagnostic(`in-thread bf16 -> f32 of 64 MiB: ${inThreadMs.toFixed(1)} ms (${(64 / (inThreadMs / 1000)).toFixed(0)} MiB/s of input)`);
    t.diagnostic(`pool: ${poolMs.toFixed(1)} ms (${(64 / (poolMs / 1000)).toFixed(0)} MiB/s); ${ticks} ticks, max gap ${maxGapMs.toFixed(1)} ms`);
    assert.equal(bytes.byteLength, 0, 'the 64 MiB were transferred, not cloned');
    assert.equal(firstBitMismatch(result, expected), -1);
    assert.ok(ticks >= 3, `the interval ticked only ${ticks} times`);
    assert.ok(
      maxGapMs < inThreadMs / 3,
      `the longest loop stall ${maxGapMs.toFixed(1)} ms is not far below the in-thread conversion ${inThreadMs.toFixed(1)} ms`,
    );
  });

  test('measures the cost of one sample() hop (vocab 32000)', async (t) => {
    const vocab = 32000;
    const logits = Float32Array.from({ length: vocab }, (_, i) => Math.sin(i * 12.9898) * 8);
    const params: SamplingParams[] = [
      { kind: 'greedy' },
      { kind: 'random', temperature: 0.8, topK: 0, topP: 0.95, seed: 1234n },
    ];
    const calls = 200;
    for (const p of params) {
      for (let i = 0; i < 20; i++) await pool.sample(logits, p, i); // warm both threads
      for (let i = 0; i < 20; i++) sampleToken(logits, p, i);
      const inThreadStart = performance.now();
      for (let i = 0; i < calls; i++) sampleToken(logits, p, i);
      const inThreadUs = ((performance.now() - inThreadStart) / calls) * 1000;
      const poolStart = performance.now();
      for (let i = 0; i < calls; i++) await pool.sample(logits, p, i);
      const poolUs = ((performance.now() - poolStart) / calls) * 1000;
      t.diagnostic(
        `${p.kind}: in-thread ${inThreadUs.toFixed(0)} us/call, pool ${poolUs.toFixed(0)} us/call, overhead ${(poolUs - inThreadUs).toFixed(0)} us`,
      );
      // Loose bound: the hop is a copy of 128 KiB and two messages, far below a decode step.
      assert.ok(poolUs - inThreadUs < 5000, `pool overhead ${(poolUs - inThreadUs).toFixed(0)} us per call`);
    }
  });
});
