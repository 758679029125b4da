import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InternalError, InvalidArgumentError } from '../../../common/errors';
import { StopCondition, type StopStep } from '../../../common/sampling/stop';

const EOS = 2;

/** Feeds (id, text) pairs; returns every step and the text a client would have seen. */
function run(stop: StopCondition, pieces: [number, string][]): { steps: StopStep[]; shown: string } {
  const steps = pieces.map(([id, text]) => stop.push(id, text));
  return { steps, shown: steps.map((s) => s.emit).join('') };
}

describe('StopCondition', () => {
  test('EOS finishes with "eos" and its text is not shown', () => {
    const stop = new StopCondition({ eosId: EOS, maxTokens: 10, stopStrings: [] });
    const { steps, shown } = run(stop, [[10, 'Hello'], [11, ' world'], [EOS, '</s>']]);
    assert.deepEqual(steps, [{ emit: 'Hello' }, { emit: ' world' }, { emit: '', finish: 'eos' }]);
    assert.equal(shown, 'Hello world');
    assert.equal(stop.finishReason, 'eos');
    assert.equal(stop.tokenCount, 3);
  });

  test('another end id (a chat template\'s end of turn) finishes like EOS; other ids do not', () => {
    const END_OF_TURN = 7;
    const stop = new StopCondition({ eosId: EOS, moreEosIds: [END_OF_TURN], maxTokens: 10, stopStrings: [] });
    const { steps, shown } = run(stop, [[10, 'Hi'], [END_OF_TURN, '']]);
    assert.deepEqual(steps[1], { emit: '', finish: 'eos' });
    assert.equal(shown, 'Hi');
    const plain = new StopCondition({ eosId: EOS, maxTokens: 10, stopStrings: [] });
    assert.deepEqual(plain.push(END_OF_TURN, 'x'), { emit: 'x' });
    assert.throws(() => new StopCondition({ eosId: EOS, moreEosIds: [-1], maxTokens: 10, stopStrings: [] }), InvalidArgumentError);
  });

  test('maxTokens finishes with "length" on the last allowed token', () => {
    const stop = new StopCondition({ eosId: EOS, maxTokens: 3, stopStrings: [] });
    const { steps } = run(stop, [[10, 'a'], [11, 'b'], [12, 'c']]);
    assert.deepEqual(steps, [{ emit: 'a' }, { emit: 'b' }, { emit: 'c', finish: 'length' }]);
    assert.throws(() => stop.push(13, 'd'), InternalError);
  });

  test('EOS as the last allowed token is "eos", not "length"', () => {
    const stop = new StopCondition({ eosId: EOS, maxTokens: 2, stopStrings: [] });
    assert.deepEqual(run(stop, [[10, 'a'], [EOS, '']]).steps[1], { emit: '', finish: 'eos' });
  });

  test('a stop string split across two tokens finishes with "stop" and is not shown', () => {
    const stop = new StopCondition({ eosId: EOS, maxTokens: 100, stopStrings: ['###'] });
    const { steps, shown } = run(stop, [[10, 'Answer: 42 #'], [11, '## next']]);
    assert.deepEqual(steps, [{ emit: 'Answer: 42 ' }, { emit: '', finish: 'stop' }]);
    assert.equal(shown, 'Answer: 42 ');
  });

  test('a stop string over three tokens, with text before it in the last one', () => {
    const stop = new StopCondition({ eosId: EOS, maxTokens: 100, stopStrings: ['</answer>'] });
    const { steps, shown } = run(stop, [[10, 'yes</'], [11, 'ans'], [12, 'wer> trailing']]);
    assert.deepEqual(steps.map((s) => s.finish), [undefined, undefined, 'stop']);
    assert.equal(shown, 'yes');
  });

  test('held-back text that turns out not to be a stop string is released', () => {
    const stop = new StopCondition({ eosId: EOS, maxTokens: 100, stopStrings: ['STOP'] });
    assert.deepEqual(stop.push(10, 'go ST'), { emit: 'go ' });
    assert.equal(stop.heldChars, 2);
    assert.deepEqual(stop.push(11, 'O'), { emit: '' });
    assert.equal(stop.heldChars, 3);
    assert.deepEqual(stop.push(12, 'RM'), { emit: 'STORM' });
    assert.equal(stop.heldChars, 0);
  });

  test('held-back text is released when the sequence ends another way, or by flush()', () => {
    const atLength = new StopCondition({ eosId: EOS, maxTokens: 2, stopStrings: ['STOP'] });
    assert.equal(run(atLength, [[10, 'a'], [11, ' ST']]).shown, 'a ST');
    const atEos = new StopCondition({ eosId: EOS, maxTokens: 5, stopStrings: ['STOP'] });
    assert.equal(run(atEos, [[10, 'a S'], [EOS, '']]).shown, 'a S');
    const flushed = new StopCondition({ eosId: EOS, maxTokens: 5, stopStrings: ['STOP'] });
    assert.deepEqual(flushed.push(10, 'a STO'), { emit: 'a ' });
    assert.equal(flushed.flush(), 'STO');
    assert.equal(flushed.flush(), '');
  });

  test('of several stop strings, the one completed first wins, however the text is chunked', () => {
    const stops = ['abc', 'b'];
    const whole = new StopCondition({ eosId: EOS, maxTokens: 10, stopStrings: stops });
    assert.deepEqual(whole.push(10, 'xabc'), { emit: 'xa', finish: 'stop' });
    const split = new StopCondition({ eosId: EOS, maxTokens: 10, stopStrings: stops });
    assert.deepEqual(split.push(10, 'xa'), { emit: 'x' }); // 'a' may begin 'abc'
    assert.deepEqual(split.push(11, 'b'), { emit: 'a', finish: 'stop' });
    // Two stop strings ending together: the longer (earlier-starting) one is cut.
    const sameEnd = new StopCondition({ eosId: EOS, maxTokens: 10, stopStrings: ['c', 'abc'] });
    assert.deepEqual(sameEnd.push(10, 'xabc'), { emit: 'x', finish: 'stop' });
  });

  test('rejects invalid options with InvalidArgumentError', () => {
    assert.throws(() => new StopCondition({ eosId: EOS, maxTokens: 0, stopStrings: [] }), InvalidArgumentError);
    assert.throws(() => new StopCondition({ eosId: EOS, maxTokens: 1.5, stopStrings: [] }), InvalidArgumentError);
    assert.throws(() => new StopCondition({ eosId: -1, maxTokens: 5, stopStrings: [] }), InvalidArgumentError);
    assert.throws(() => new StopCondition({ eosId: EOS, maxTokens: 5, stopStrings: [''] }), InvalidArgumentError);
  });
});
