/**
 * S11's and S12's judgements of refusals: an attempt counts as refused only where and how it must
 * be (a handshake, or the handler's status), handler refusals need their audit lines, and an
 * overload run may end a request only by completing it or refusing it with the allowed codes.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { allowedOverloadCodes, attemptViolations, auditRefusals, missingAuditLines, outcomeCounts, overloadViolations, type RogueAttempt } from '../../../chaos/refusals';
import type { Attempt, RequestRecord } from '../../../chaos/workload';
import type { ErrorCode } from '../../../common/errors';

function attempt(partial: Partial<RogueAttempt> & Pick<RogueAttempt, 'expected' | 'outcome'>): RogueAttempt {
  return { action: 'Forward to stage 0 (w1)', node: 'w1', credential: 'no certificate', ...partial };
}

const refused = (code: string): RogueAttempt['outcome'] => ({ refused: true, code, message: 'no' });

describe('rogue attempts', () => {
  test('a handshake refusal is UNAVAILABLE; a handler refusal has exactly the expected status', () => {
    assert.deepEqual(attemptViolations([attempt({ expected: 'handshake', outcome: refused('UNAVAILABLE') }), attempt({ expected: 'PERMISSION_DENIED', outcome: refused('PERMISSION_DENIED') })]), []);
    const wrong = attemptViolations([attempt({ expected: 'PERMISSION_DENIED', outcome: refused('UNAUTHENTICATED') }), attempt({ expected: 'handshake', outcome: refused('PERMISSION_DENIED') })]);
    assert.equal(wrong.length, 2);
    assert.match(wrong[0], /refused with UNAUTHENTICATED, expected PERMISSION_DENIED/);
  });

  test('an attempt that got through is a violation whatever was expected', () => {
    const v = attemptViolations([attempt({ expected: 'handshake', outcome: { refused: false, code: 'OK', message: 'the stage acked the frame' } })]);
    assert.deepEqual(v, ['Forward to stage 0 (w1) with no certificate was NOT refused (OK: the stage acked the frame)']);
  });

  test('audit lines: refused ones counted by what, other lines and non-JSON skipped', () => {
    const text = [
      '{"when":"t","who":"peer 10.77.0.1:5","what":"Drain","outcome":"refused","detail":"missing API key"}',
      '{"when":"t","who":"coordinator","what":"plan change to epoch 1","outcome":"ok"}',
      'not json',
      '{"when":"t","who":"client/rogue","what":"Drain","outcome":"refused"}',
      '{"when":"t","who":"client/rogue","what":"FetchTensor","outcome":"refused"}',
      '',
    ].join('\n');
    assert.deepEqual([...auditRefusals(text)], [['Drain', 2], ['FetchTensor', 1]]);
  });

  test('every handler refusal needs an audit line on its node; handshakes and unaudited targets need none', () => {
    const attempts = [
      attempt({ node: 'c1', audit: 'Drain', expected: 'UNAUTHENTICATED', outcome: refused('UNAUTHENTICATED') }),
      attempt({ node: 'c1', audit: 'Drain', expected: 'PERMISSION_DENIED', outcome: refused('PERMISSION_DENIED') }),
      attempt({ node: 'w1', audit: 'Forward', expected: 'handshake', outcome: refused('UNAVAILABLE') }),
      attempt({ node: 'etcd', expected: 'PERMISSION_DENIED', outcome: refused('PERMISSION_DENIED') }),
    ];
    assert.deepEqual(missingAuditLines(attempts, new Map([['c1', new Map([['Drain', 2]])]])), []);
    assert.deepEqual(missingAuditLines(attempts, new Map([['c1', new Map([['Drain', 1]])]])), ['c1: 1 refused Drain audit line(s), 2 handler refusal(s) made']);
    assert.deepEqual(missingAuditLines(attempts, new Map()), ['c1: 0 refused Drain audit line(s), 2 handler refusal(s) made']);
  });
});

function record(lane: number, end: { completed: true } | { code: ErrorCode; tokens?: number }, promptText?: string): RequestRecord {
  const tokens = Array.from({ length: 'completed' in end ? 2 : (end.tokens ?? 0) }, (_, i) => ({ index: i, tokenId: 5, atMs: i }));
  const a: Attempt = { coordinator: 'c1', startedAtMs: 0, endedAtMs: 1, tokens, finished: 'completed' in end, ...('completed' in end ? {} : { error: { code: end.code, message: 'm' } }) };
  return { lane, iteration: 0, spec: { lane, promptIds: [1], maxTokens: 2, ...(promptText === undefined ? {} : { promptText }) }, attempts: [a], ...('completed' in end ? { completed: a } : {}) };
}

describe('overload outcomes', () => {
  test('an oversized prompt may also be refused by the byte limit; an ordinary request only by admission', () => {
    assert.deepEqual(allowedOverloadCodes(false), ['RESOURCE_EXHAUSTED']);
    assert.deepEqual(allowedOverloadCodes(true), ['RESOURCE_EXHAUSTED', 'INVALID_ARGUMENT']);
  });

  test('completed and allowed refusals pass; other errors, and refusals after tokens, do not', () => {
    const ok = [record(0, { completed: true }), record(1, { code: 'RESOURCE_EXHAUSTED' }), record(1000, { code: 'INVALID_ARGUMENT' }, 'x'), record(1001, { code: 'RESOURCE_EXHAUSTED' }, 'x')];
    assert.deepEqual(overloadViolations(ok), []);
    const bad = overloadViolations([record(2, { code: 'INVALID_ARGUMENT' }), record(3, { code: 'UNAVAILABLE' }, 'x'), record(4, { code: 'RESOURCE_EXHAUSTED', tokens: 3 })]);
    assert.equal(bad.length, 3);
    assert.match(bad[0], /^lane 2 #0: INVALID_ARGUMENT/);
    assert.match(bad[1], /^lane 3 #0 \(oversized prompt\): UNAVAILABLE/);
    assert.match(bad[2], /after 3 tokens/);
    assert.deepEqual([...outcomeCounts(ok)], [['completed', 1], ['RESOURCE_EXHAUSTED', 2], ['INVALID_ARGUMENT', 1]]);
  });
});
