/**
 * RunExperts requests of bounded size: a step's calls are grouped into requests of at most
 * `maxBytes` of activations, a larger call is split into row ranges of the same expert, and the
 * outputs go back together as the unsplit calls' outputs.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ExpertCall } from '../../../common/engine/experts';
import { joinExpertOutputs, splitExpertCalls } from '../../../worker/expert-request-split';

const H = 4; // 16 bytes a row
const call = (expert: number, tokens: number): ExpertCall => ({ expert, tokens, x: Float32Array.from({ length: tokens * H }, (_, i) => expert * 1000 + i) });
const shape = (pieces: ReturnType<typeof splitExpertCalls>) => pieces.map((p) => p.calls.map((c) => `${c.expert}:${c.tokens}`).join(' '));

describe('splitExpertCalls', () => {
  const table: [string, ExpertCall[], number, string[]][] = [
    ['everything fits one request', [call(0, 2), call(1, 3)], 1024, ['0:2 1:3']],
    ['calls grouped up to the limit', [call(0, 2), call(1, 2), call(2, 2)], 64, ['0:2 1:2', '2:2']],
    ['a call over the limit split into row ranges of the same expert', [call(0, 10)], 64, ['0:4', '0:4', '0:2']],
    ['a split call between whole ones', [call(0, 1), call(1, 9), call(2, 1)], 64, ['0:1', '1:4', '1:4', '1:1 2:1']],
    ['a row larger than the limit still goes, one a request', [call(0, 2)], 8, ['0:1', '0:1']],
  ];
  for (const [name, calls, maxBytes, expected] of table) {
    test(name, () => {
      const pieces = splitExpertCalls(calls, maxBytes);
      assert.deepEqual(shape(pieces), expected);
      for (const p of pieces) {
        const bytes = p.calls.reduce((n, c) => n + c.x.byteLength, 0);
        assert.ok(bytes <= maxBytes || p.calls.length === 1, `${bytes} bytes in one request`);
      }
    });
  }

  test('the joined outputs are the unsplit outputs, row for row', () => {
    const calls = [call(0, 1), call(1, 9), call(2, 3)];
    const pieces = splitExpertCalls(calls, 64);
    // A stand-in expert: y = x + 0.5, row by row (any row-wise function would do).
    const outputs = pieces.map((p) => p.calls.map((c) => c.x.map((v) => v + 0.5)));
    const joined = joinExpertOutputs(calls, pieces, outputs);
    assert.deepEqual(
      joined.map((y) => [...y]),
      calls.map((c) => [...c.x.map((v) => v + 0.5)]),
    );
  });

  test('one request is passed through as it is', () => {
    const calls = [call(0, 2), call(1, 2)];
    const pieces = splitExpertCalls(calls, 1 << 20);
    assert.equal(pieces.length, 1);
    assert.equal(pieces[0].calls[0].x, calls[0].x, 'no copy');
    const outputs = [calls.map((c) => new Float32Array(c.x.length))];
    assert.deepEqual(joinExpertOutputs(calls, pieces, outputs), outputs[0]);
  });
});
