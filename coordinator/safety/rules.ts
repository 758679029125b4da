/**
 * A safety policy's rules, compiled for the streaming matcher.
 *
 * A rule is a deny-list (literal phrases, case-insensitive unless told otherwise, optionally whole
 * words) or a regex with a declared maximum match length. Each compiles to one global RegExp and
 * to the two numbers the matcher needs:
 *
 *   needChars  code units after a match's start that settle whether, and how long, it matches
 *              there: the longest match, plus one when the pattern looks at the character after
 *              (`$`, `\b`, `\B`);
 *   couldStart(tail)  whether the unsettled text `tail` could still begin a match. A deny-list
 *              answers exactly (is `tail` the start of a phrase?), so text that cannot begin a
 *              phrase is released at once; a regex answers true, so it holds back its bound.
 *
 * A rule's hold-back, the most text it can keep unreleased, is needChars - 1 code units.
 */
import { InvalidArgumentError } from '../../common/errors';
import { codeUnitsPerChar, regexBounds } from './regex-bounds';

export type SafetyAction = 'block' | 'redact';
export type SafetyStage = 'prompt' | 'output';

export const DEFAULT_REPLACEMENT = '[redacted]';

interface RuleCommon {
  /** Names the rule in metrics, audit lines and errors. */
  readonly id: string;
  readonly action: SafetyAction;
  /** Where the rule applies; both by default. */
  readonly stages: readonly SafetyStage[];
  /** What a redacted match becomes; DEFAULT_REPLACEMENT by default. */
  readonly replacement: string;
}

export interface DenyRuleSpec extends RuleCommon {
  readonly kind: 'deny';
  readonly phrases: readonly string[];
  readonly caseSensitive: boolean;
  /** A phrase matches only where it is not part of a longer word. */
  readonly wholeWord: boolean;
}

export interface RegexRuleSpec extends RuleCommon {
  readonly kind: 'regex';
  readonly pattern: string;
  /** Of i, m, s, u. */
  readonly flags: string;
  /** The longest match, in characters as the regex counts them (code points with u). */
  readonly maxMatchChars: number;
}

export type RuleSpec = DenyRuleSpec | RegexRuleSpec;

export interface CompiledRule {
  readonly spec: RuleSpec;
  /** Global (g): the matcher sets lastIndex. */
  readonly regex: RegExp;
  readonly needChars: number;
  couldStart(tail: string): boolean;
}

const ALLOWED_FLAGS = /^[imsu]*$/;

function escapeRegex(text: string): string {
  return text.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');
}

/**
 * What the regex engine compares under the i flag without u (ECMA-262 Canonicalize): the
 * upper case of a code unit when that is one code unit and does not turn non-ASCII into ASCII.
 */
function canonicalUnit(unit: string): string {
  const upper = unit.toUpperCase();
  if (upper.length !== 1) return unit;
  if (unit.charCodeAt(0) >= 128 && upper.charCodeAt(0) < 128) return unit;
  return upper;
}

function canonical(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; i++) out += canonicalUnit(text[i]!);
  return out;
}

const WORD_CHAR = /\w/;

function compileDeny(spec: DenyRuleSpec): CompiledRule {
  if (spec.phrases.length === 0) throw new InvalidArgumentError(`rule "${spec.id}": phrases is empty`);
  for (const phrase of spec.phrases) {
    if (phrase === '') throw new InvalidArgumentError(`rule "${spec.id}": a phrase is empty`);
  }
  // Longest first: at one position the longest phrase wins.
  const phrases = [...spec.phrases].sort((a, b) => b.length - a.length);
  const alternatives = phrases.map((p) => {
    const start = spec.wholeWord && WORD_CHAR.test(p[0]!) ? '\\b' : '';
    const end = spec.wholeWord && WORD_CHAR.test(p[p.length - 1]!) ? '\\b' : '';
    return `${start}${escapeRegex(p)}${end}`;
  });
  const regex = new RegExp(alternatives.join('|'), spec.caseSensitive ? 'g' : 'gi');
  const fold = spec.caseSensitive ? (s: string): string => s : canonical;
  const folded = phrases.map(fold);
  const longest = phrases[0]!.length;
  return {
    spec,
    regex,
    needChars: longest + (spec.wholeWord ? 1 : 0),
    // The tail begins a phrase, or a phrase is all of the tail's start (its end is unsettled).
    couldStart: (tail) => {
      const t = fold(tail);
      return folded.some((p) => (t.length < p.length ? p.startsWith(t) : t.startsWith(p)));
    },
  };
}

function compileRegex(spec: RegexRuleSpec): CompiledRule {
  if (!ALLOWED_FLAGS.test(spec.flags)) throw new InvalidArgumentError(`rule "${spec.id}": flags must be some of i, m, s, u; got "${spec.flags}"`);
  let bounds;
  try {
    bounds = regexBounds(spec.pattern, spec.flags);
  } catch (err) {
    throw new InvalidArgumentError(`rule "${spec.id}": ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  if (bounds.minChars === 0) throw new InvalidArgumentError(`rule "${spec.id}": regex /${spec.pattern}/ can match empty text`);
  if (bounds.maxChars > spec.maxMatchChars) {
    throw new InvalidArgumentError(`rule "${spec.id}": regex /${spec.pattern}/ can match ${bounds.maxChars} characters, more than its maxMatchChars ${spec.maxMatchChars}`);
  }
  return {
    spec,
    regex: new RegExp(spec.pattern, `g${spec.flags}`),
    needChars: spec.maxMatchChars * codeUnitsPerChar(spec.flags) + (bounds.peeksAfter ? 1 : 0),
    couldStart: () => true,
  };
}

export function compileRule(spec: RuleSpec): CompiledRule {
  return spec.kind === 'deny' ? compileDeny(spec) : compileRegex(spec);
}

/** Code units a set of rules can hold back in a stream (0: none). */
export function holdBackChars(rules: readonly CompiledRule[]): number {
  return rules.reduce((most, r) => Math.max(most, r.needChars - 1), 0);
}
