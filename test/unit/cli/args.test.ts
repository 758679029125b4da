/**
 * Flag parsing at and beyond each range: an integer flag is digits only and inside its range,
 * never wrapped, rounded or reinterpreted (Number("") is 0, Number("0x10") is 16); the generate
 * flags that travel as uint32 are refused above 2^32 - 1, and --max-tokens 0 is an error.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InvalidArgumentError } from '../../../common/errors';
import { UINT32, floatFlag, idListFlag, intFlag } from '../../../cli/args';
import { parseGenerateRequest } from '../../../cli/generate';

const invalid = (message: RegExp) => (err: unknown) => err instanceof InvalidArgumentError && message.test(err.message);

describe('intFlag', () => {
  const accepted: [string, number, { min: number; max: number } | undefined][] = [
    ['0', 0, undefined],
    ['9007199254740991', Number.MAX_SAFE_INTEGER, undefined],
    ['4294967295', UINT32.max, UINT32],
    ['1', 1, { min: 1, max: 2 }],
    ['2', 2, { min: 1, max: 2 }],
    ['-3', -3, { min: -5, max: 0 }],
  ];
  for (const [text, value, range] of accepted) {
    test(`accepts "${text}" in ${range === undefined ? 'the default range' : `[${range.min}, ${range.max}]`}`, () => {
      assert.equal(intFlag(text, '--n', undefined, range), value);
    });
  }
  const refused: [string, { min: number; max: number } | undefined][] = [
    ['4294967296', UINT32],
    ['4294967297', UINT32],
    ['9007199254740992', undefined],
    ['-1', undefined],
    ['0', { min: 1, max: 2 }],
    ['3', { min: 1, max: 2 }],
    ['', undefined],
    [' 7', undefined],
    ['0x10', undefined],
    ['1e3', undefined],
    ['1.5', undefined],
    ['Infinity', undefined],
    ['12abc', undefined],
  ];
  for (const [text, range] of refused) {
    test(`refuses "${text}"${range === undefined ? '' : ` outside [${range.min}, ${range.max}]`}`, () => {
      assert.throws(() => intFlag(text, '--n', 5, range), invalid(/^--n must be an integer in \[-?\d+, \d+\], got ".*"$/));
    });
  }
  test('the fallback when absent; required without one', () => {
    assert.equal(intFlag(undefined, '--n', 5), 5);
    assert.throws(() => intFlag(undefined, '--n'), invalid(/^--n is required$/));
  });
});

describe('floatFlag and idListFlag', () => {
  test('floatFlag refuses empty, blank and non-finite values', () => {
    for (const text of ['', '  ', 'NaN', 'Infinity', '1e999', 'abc']) assert.throws(() => floatFlag(text, '--t', 1), invalid(/^--t must be a number/));
    assert.equal(floatFlag('0.25', '--t', 1), 0.25);
  });
  test('idListFlag: ids in [0, 2^32 - 1], digits only', () => {
    assert.deepEqual(idListFlag('1, 4294967295', '--ids'), [1, 4294967295]);
    for (const text of ['1,4294967296', '-1', '1,0x2', '', ',', '1.5']) assert.throws(() => idListFlag(text, '--ids'), invalid(/^--ids must be a comma-separated list of token ids/));
  });
});

describe('bora generate flags', () => {
  const flags = (extra: Record<string, string | boolean>) => ({ prompt: 'Hi', ...extra });
  const refused: [Record<string, string | boolean>, RegExp][] = [
    [{ 'max-tokens': '4294967297' }, /^--max-tokens must be an integer in \[1, 4294967295\], got "4294967297"$/],
    [{ 'max-tokens': '4294967296' }, /^--max-tokens must be an integer in \[1, 4294967295\]/],
    [{ 'max-tokens': '0' }, /^--max-tokens must be an integer in \[1, 4294967295\], got "0"$/],
    [{ 'max-tokens': '-1' }, /^--max-tokens must be an integer/],
    [{ 'top-k': '4294967296' }, /^--top-k must be an integer in \[0, 4294967295\]/],
    [{ 'top-k': '-1' }, /^--top-k must be an integer/],
    [{ temperature: '0' }, /temperature must be a finite number > 0, got 0/],
    [{ temperature: '-0.5' }, /temperature must be a finite number > 0/],
    [{ 'top-p': '0' }, /topP must be in \(0, 1\]/],
    [{ 'top-p': '1.01' }, /topP must be in \(0, 1\]/],
    [{ seed: '18446744073709551616' }, /sampling seed must be an integer in \[0, 2\^64\)/],
    [{ seed: '-1' }, /sampling seed must be an integer in \[0, 2\^64\)/],
  ];
  for (const [extra, message] of refused) {
    test(`refuses ${JSON.stringify(extra)}`, () => {
      assert.throws(() => parseGenerateRequest(flags(extra)), invalid(message));
    });
  }
  test('accepts each field at its bounds', () => {
    assert.equal(parseGenerateRequest(flags({ 'max-tokens': '1' })).maxTokens, 1);
    assert.equal(parseGenerateRequest(flags({ 'max-tokens': '4294967295' })).maxTokens, 4294967295);
    const s = parseGenerateRequest(flags({ 'top-k': '4294967295', 'top-p': '1', temperature: '1e-6', seed: '18446744073709551615' })).sampling;
    assert.deepEqual(s, { kind: 'random', temperature: 1e-6, topK: 4294967295, topP: 1, seed: 2n ** 64n - 1n });
  });
});
