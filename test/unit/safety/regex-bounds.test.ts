/** The regex length analysis: bounds of accepted patterns, and refusals with a reason. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as fc from 'fast-check';
import { regexBounds } from '../../../coordinator/safety/regex-bounds';
import { fuzzParameters } from '../../support/fuzz';

describe('regex bounds', () => {
  test('computes the shortest and longest match', () => {
    assert.deepEqual(regexBounds('abc', ''), { minChars: 3, maxChars: 3, peeksAfter: false });
    assert.deepEqual(regexBounds('a{2,5}b?', ''), { minChars: 2, maxChars: 6, peeksAfter: false });
    assert.deepEqual(regexBounds('\\b(?:ab|c{3})\\b', 'i'), { minChars: 2, maxChars: 3, peeksAfter: true });
    assert.deepEqual(regexBounds('[a-z\\]]{1,10}?x$', ''), { minChars: 2, maxChars: 11, peeksAfter: true });
    assert.deepEqual(regexBounds('(?<year>\\d{4})-\\u00e9\\x41', 'u'), { minChars: 7, maxChars: 7, peeksAfter: false });
    assert.deepEqual(regexBounds('😀.', 'u'), { minChars: 2, maxChars: 2, peeksAfter: false });
    assert.deepEqual(regexBounds('😀.', ''), { minChars: 3, maxChars: 3, peeksAfter: false });
  });

  test('refuses unbounded, lookaround and backreference patterns, saying why', () => {
    assert.throws(() => regexBounds('ab*', ''), /"\*" is unbounded/);
    assert.throws(() => regexBounds('(ab)+', ''), /"\+" is unbounded/);
    assert.throws(() => regexBounds('a{3,}', ''), /"\{3,\}" is unbounded/);
    assert.throws(() => regexBounds('a(?=b)', ''), /lookahead/);
    assert.throws(() => regexBounds('(?<!a)b', ''), /lookbehind/);
    assert.throws(() => regexBounds('(a)\\1', ''), /backreference/);
    assert.throws(() => regexBounds('a(', ''), /does not compile/);
  });

  test('every match of a random bounded pattern lies within the computed bounds', () => {
    const atom = fc.constantFrom('a', 'b', '.', '[ab]', '\\d', '(?:a|bb)', '(ab|b)');
    const quant = fc.constantFrom('', '?', '{2}', '{0,3}', '{1,2}?');
    const pattern = fc.array(fc.tuple(atom, quant).map(([a, q]) => a + q), { minLength: 1, maxLength: 4 }).map((p) => p.join(''));
    const subject = fc.array(fc.constantFrom('a', 'b', '1', ' '), { maxLength: 30 }).map((a) => a.join(''));
    fc.assert(
      fc.property(pattern, subject, (p, s) => {
        const { minChars, maxChars } = regexBounds(p, '');
        for (const m of s.matchAll(new RegExp(p, 'g'))) {
          assert.ok(m[0].length >= minChars && m[0].length <= maxChars, `/${p}/ matched ${JSON.stringify(m[0])}, bounds [${minChars}, ${maxChars}]`);
        }
      }),
      fuzzParameters(1000),
    );
  });
});
