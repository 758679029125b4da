/**
 * The streaming matcher against an independent one-pass reference: for any text, any chunking
 * and any mix of deny-list and regex rules, the released text is the reference's (matches
 * redacted, the text cut at a block), nothing is released that the whole text would filter, the
 * held-back text never exceeds the policy's bound, and a deny-list holds back only text that
 * could still begin a phrase.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as fc from 'fast-check';
import { compileRule, holdBackChars, type CompiledRule, type RuleSpec } from '../../../coordinator/safety/rules';
import { StreamMatcher } from '../../../coordinator/safety/stream-matcher';
import { fuzzParameters } from '../../support/fuzz';

/** Scans the whole text position by position, trying each rule (in order) anchored there. */
function reference(rules: readonly CompiledRule[], text: string): { text: string; blocked: string | undefined } {
  const sticky = rules.map((r) => new RegExp(r.regex.source, `${r.regex.flags.replace('g', '')}y`));
  let out = '';
  let pos = 0;
  while (pos < text.length) {
    let hit: { rule: CompiledRule; length: number } | undefined;
    for (let i = 0; i < rules.length && hit === undefined; i++) {
      sticky[i]!.lastIndex = pos;
      const m = sticky[i]!.exec(text);
      if (m !== null) hit = { rule: rules[i]!, length: m[0].length };
    }
    if (hit === undefined) {
      out += text[pos];
      pos++;
      continue;
    }
    if (hit.rule.spec.action === 'block') return { text: out, blocked: hit.rule.spec.id };
    out += hit.rule.spec.replacement;
    pos += hit.length;
  }
  return { text: out, blocked: undefined };
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

const common = (id: string, action: 'block' | 'redact') => ({ id, action, stages: ['prompt', 'output'] as const, replacement: `<${id}>` });

const ALPHABET = ['a', 'b', 'c', 'A', ' ', '.', '-', 'é'];
const word = fc.array(fc.constantFrom(...ALPHABET), { minLength: 1, maxLength: 4 }).map((a) => a.join(''));

const denyRule = (id: string): fc.Arbitrary<RuleSpec> =>
  fc.record({
    phrases: fc.array(word, { minLength: 1, maxLength: 3 }),
    caseSensitive: fc.boolean(),
    wholeWord: fc.boolean(),
    action: fc.constantFrom('block' as const, 'redact' as const),
  }).map((r) => ({ ...common(id, r.action), kind: 'deny' as const, phrases: r.phrases, caseSensitive: r.caseSensitive, wholeWord: r.wholeWord }));

const REGEXES: readonly { pattern: string; flags: string; maxMatchChars: number }[] = [
  { pattern: 'a[bc]{1,3}', flags: '', maxMatchChars: 4 },
  { pattern: '\\bc.a\\b', flags: 'i', maxMatchChars: 3 },
  { pattern: 'b$', flags: '', maxMatchChars: 1 },
  { pattern: '^ab|ba?c', flags: 'm', maxMatchChars: 3 },
  { pattern: '(?:a|bb)\\.{0,2}-', flags: '', maxMatchChars: 5 },
  { pattern: 'é{1,2}', flags: 'u', maxMatchChars: 2 },
];

const regexRule = (id: string): fc.Arbitrary<RuleSpec> =>
  fc.record({ which: fc.integer({ min: 0, max: REGEXES.length - 1 }), action: fc.constantFrom('block' as const, 'redact' as const) }).map((r) => ({
    ...common(id, r.action),
    kind: 'regex' as const,
    ...REGEXES[r.which]!,
  }));

const anyRule = (id: string): fc.Arbitrary<RuleSpec> => fc.oneof(denyRule(id), regexRule(id));
const policy = (rule: (id: string) => fc.Arbitrary<RuleSpec>) => fc.array(fc.integer({ min: 0, max: 1e6 }), { minLength: 1, maxLength: 4 }).chain((ids) => fc.tuple(...ids.map((_, i) => rule(`r${i}`))));

const text = fc.array(fc.constantFrom(...ALPHABET), { maxLength: 40 }).map((a) => a.join(''));

/** `text` cut at `cuts` (sorted, deduplicated offsets). */
function chunks(s: string, cuts: readonly number[]): string[] {
  const at = [...new Set(cuts.map((c) => c % (s.length + 1)))].sort((a, b) => a - b);
  const out: string[] = [];
  let prev = 0;
  for (const c of at) {
    out.push(s.slice(prev, c));
    prev = c;
  }
  out.push(s.slice(prev));
  return out;
}

function runStream(rules: readonly CompiledRule[], pieces: readonly string[], afterPush: (released: string, held: string) => void): { text: string; blocked: string | undefined } {
  const matcher = new StreamMatcher(rules);
  let released = '';
  for (const piece of pieces) {
    const step = matcher.push(piece);
    released += step.release;
    if (step.blocked !== undefined) return { text: released, blocked: step.blocked.rule.spec.id };
    afterPush(released, matcher.heldBack);
  }
  const last = matcher.end();
  released += last.release;
  return { text: released, blocked: last.blocked?.rule.spec.id };
}

describe('streaming safety matcher', () => {
  test('releases what one pass over the whole text gives, whatever the chunking, and never early', () => {
    fc.assert(
      fc.property(policy(anyRule), text, fc.array(fc.nat(), { maxLength: 12 }), (specs, s, cuts) => {
        const rules = specs.map(compileRule);
        const want = reference(rules, s);
        const bound = holdBackChars(rules);
        const got = runStream(rules, chunks(s, cuts), (released, held) => {
          assert.ok(want.text.startsWith(released), `released ${JSON.stringify(released)} is not a prefix of ${JSON.stringify(want.text)}`);
          assert.ok(held.length <= bound, `held ${held.length} code units, bound ${bound}`);
        });
        assert.deepEqual(got, want);
      }),
      fuzzParameters(2000),
    );
  });

  test('a deny-list holds back only text that could still begin a phrase', () => {
    fc.assert(
      fc.property(policy(denyRule), text, fc.array(fc.nat(), { maxLength: 12 }), (specs, s, cuts) => {
        const rules = specs.map(compileRule);
        runStream(rules, chunks(s, cuts), (_released, held) => {
          if (held !== '') assert.ok(rules.some((r) => r.couldStart(held)), `held ${JSON.stringify(held)}, which begins no phrase`);
        });
      }),
      fuzzParameters(1000),
    );
  });

  test('one character at a time: text is released as soon as it cannot begin a phrase', () => {
    const rules = [compileRule({ ...common('secret', 'redact'), kind: 'deny', phrases: ['falcon'], caseSensitive: false, wholeWord: false })];
    const matcher = new StreamMatcher(rules);
    const out = [...'a Falcon flies, fal'].map((c) => matcher.push(c).release);
    // "F" waits until "Falcon" is whole; "f" of "flies" until "l" shows it is not "fa...".
    assert.deepEqual(out.join('|'), 'a| ||||||<secret>| ||fl|i|e|s|,| |||');
    assert.equal(matcher.heldBack, 'fal');
    assert.equal(matcher.end().release, 'fal');
  });

  test('never releases half of a surrogate pair', () => {
    const rules = [compileRule({ ...common('x', 'redact'), kind: 'regex', pattern: 'ab.', flags: 'u', maxMatchChars: 3 })];
    for (let cut = 0; cut <= 12; cut++) {
      const matcher = new StreamMatcher(rules);
      const text = 'hi 🦊🦊 ab🦊 🦊!';
      const released = [matcher.push(text.slice(0, cut)).release, matcher.push(text.slice(cut)).release];
      for (const r of released) assert.ok(!LONE_SURROGATE.test(r), `cut at ${cut}: ${JSON.stringify(r)}`);
      assert.equal(released.join('') + matcher.end().release, 'hi 🦊🦊 <x> 🦊!');
    }
  });

  test('a block cuts the text before the match and releases nothing after it', () => {
    const rules = [compileRule({ ...common('stop', 'block'), kind: 'regex', pattern: 'x\\d{2,3}', flags: '', maxMatchChars: 4 })];
    const matcher = new StreamMatcher(rules);
    // A match is at most 4 code units, so the last 3 wait.
    assert.equal(matcher.push('ok x1').release, 'ok');
    const step = matcher.push('23 more');
    assert.equal(step.release, ' ');
    assert.equal(step.blocked?.rule.spec.id, 'stop');
    assert.equal(step.blocked?.offset, 3);
    assert.equal(matcher.push('tail').release, '');
    assert.equal(matcher.end().release, '');
  });
});
