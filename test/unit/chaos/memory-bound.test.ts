/** S12's memory bound: each node's peak under load against its own fault-free peak plus an allowance. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { memoryPeaks, memoryViolations, MIB } from '../../../chaos/memory-bound';
import type { RssSample } from '../../../chaos/observer';

const s = (node: string, atMs: number, mib: number): RssSample => ({ node, atMs, rssBytes: mib * MIB });

describe('memory bound', () => {
  const samples = [s('c1', 10, 200), s('c1', 20, 230), s('w1', 15, 150), s('c1', 110, 400), s('c1', 120, 480), s('w1', 115, 160), s('etcd', 130, 30)];
  const peaks = memoryPeaks(samples, { fromMs: 0, toMs: 50 }, { fromMs: 100, toMs: 200 }, 256 * MIB);

  test('peaks per node in the window, bounds from the baseline window', () => {
    assert.deepEqual(
      peaks.map((p) => [p.node, p.peakBytes / MIB, p.baselineBytes === undefined ? undefined : p.baselineBytes / MIB, p.boundBytes === undefined ? undefined : p.boundBytes / MIB]),
      [['c1', 480, 230, 486], ['etcd', 30, undefined, undefined], ['w1', 160, 150, 406]],
    );
  });

  test('a node over its bound, or without a baseline, is a violation', () => {
    assert.deepEqual(memoryViolations(peaks), ['etcd: no fault-free RSS sample to bound it by']);
    const tight = memoryPeaks(samples, { fromMs: 0, toMs: 50 }, { fromMs: 100, toMs: 200 }, 200 * MIB).filter((p) => p.node !== 'etcd');
    assert.deepEqual(memoryViolations(tight), ['c1: peak 480 MiB over its bound 430 MiB']);
  });
});
