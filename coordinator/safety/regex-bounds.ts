/**
 * How long a match of a JavaScript regular expression can be, read from the pattern itself, so
 * that a streaming filter knows how much text it must hold back (stream-matcher.ts).
 *
 * A small parser walks the pattern: literals, escapes, `.`, classes `[...]`, groups `(...)`,
 * `(?:...)`, `(?<name>...)`, alternation `|`, the anchors `^ $ \b \B`, and the quantifiers
 * `? {n} {n,m}` (lazy forms too). Lengths are counted in characters as the regex counts them:
 * UTF-16 code units, or code points with the `u` flag (where one can take 2 code units; the
 * caller converts with codeUnitsPerChar).
 *
 * Refused, with a message saying why: an unbounded quantifier (`*`, `+`, `{n,}`), which would make
 * the hold-back the whole stream; lookahead and lookbehind, which read text outside the match; and
 * backreferences, whose length is that of another group's match.
 */
import { InvalidArgumentError } from '../../common/errors';

export interface RegexBounds {
  /** Fewest characters a match can have. */
  readonly minChars: number;
  /** Most characters a match can have. */
  readonly maxChars: number;
  /** The pattern has `$`, `\b` or `\B`: whether it matches can depend on the character after. */
  readonly peeksAfter: boolean;
}

interface Span {
  min: number;
  max: number;
}

class PatternParser {
  private pos = 0;
  peeksAfter = false;

  constructor(
    private readonly pattern: string,
    private readonly unicode: boolean,
  ) {}

  fail(why: string): never {
    throw new InvalidArgumentError(`regex /${this.pattern}/ at offset ${this.pos}: ${why}`);
  }

  parseAll(): Span {
    const span = this.alternation();
    if (this.pos < this.pattern.length) this.fail(`unbalanced ")"`);
    return span;
  }

  /** branch ('|' branch)* */
  private alternation(): Span {
    let span = this.branch();
    while (this.peek() === '|') {
      this.pos++;
      const next = this.branch();
      span = { min: Math.min(span.min, next.min), max: Math.max(span.max, next.max) };
    }
    return span;
  }

  /** A sequence of quantified atoms, up to '|' or ')' or the end. */
  private branch(): Span {
    const span: Span = { min: 0, max: 0 };
    while (this.pos < this.pattern.length && this.peek() !== '|' && this.peek() !== ')') {
      const atom = this.quantified(this.atom());
      span.min += atom.min;
      span.max += atom.max;
    }
    return span;
  }

  private quantified(atom: Span): Span {
    const c = this.peek();
    let lo = 1;
    let hi = 1;
    if (c === '*' || c === '+') this.fail(`"${c}" is unbounded; give a maximum, e.g. {0,40}`);
    if (c === '?') {
      this.pos++;
      lo = 0;
    } else if (c === '{') {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(this.pattern.slice(this.pos));
      if (m === null) {
        if (this.unicode) this.fail('a lone "{" (escape it as \\{)');
        return atom; // Without the u flag a "{" that starts no quantifier is a literal.
      }
      this.pos += m[0].length;
      lo = Number(m[1]);
      if (m[2] === undefined) hi = lo;
      else if (m[3] === '') this.fail(`"${m[0]}" is unbounded; give a maximum, e.g. {${m[1]},${Number(m[1]) + 40}}`);
      else hi = Number(m[3]);
      if (hi < lo) this.fail(`"${m[0]}" has its numbers out of order`);
    } else {
      return atom;
    }
    if (this.peek() === '?') this.pos++; // lazy: the same lengths
    if (this.peek() === '*' || this.peek() === '+' || this.peek() === '?' || this.peek() === '{') this.fail('nothing to repeat');
    return { min: atom.min * lo, max: atom.max * hi };
  }

  private atom(): Span {
    const c = this.next();
    switch (c) {
      case '(':
        return this.group();
      case '[':
        this.skipClass();
        return { min: 1, max: 1 };
      case '\\':
        return this.escape();
      case '^':
        return { min: 0, max: 0 };
      case '$':
        this.peeksAfter = true;
        return { min: 0, max: 0 };
      case '*':
      case '+':
      case '?':
        return this.fail('nothing to repeat');
      default:
        // With the u flag a surrogate pair in the pattern is one character.
        if (this.unicode && isHighSurrogate(c) && isLowSurrogate(this.peek())) this.pos++;
        return { min: 1, max: 1 };
    }
  }

  private group(): Span {
    if (this.pattern.startsWith('?:', this.pos)) this.pos += 2;
    else if (this.pattern.startsWith('?=', this.pos) || this.pattern.startsWith('?!', this.pos)) this.fail('lookahead reads past the match; it is not allowed');
    else if (this.pattern.startsWith('?<=', this.pos) || this.pattern.startsWith('?<!', this.pos)) this.fail('lookbehind reads before the match; it is not allowed');
    else if (this.pattern.startsWith('?<', this.pos)) {
      const close = this.pattern.indexOf('>', this.pos);
      if (close < 0) this.fail('unterminated group name');
      this.pos = close + 1;
    } else if (this.peek() === '?') this.fail('unknown group kind');
    const inner = this.alternation();
    if (this.next() !== ')') this.fail('unterminated group');
    return inner;
  }

  private skipClass(): void {
    while (this.pos < this.pattern.length) {
      const c = this.next();
      if (c === '\\') this.pos++;
      else if (c === ']') return;
    }
    this.fail('unterminated character class');
  }

  private escape(): Span {
    const c = this.next();
    if (c === '') this.fail('a trailing "\\"');
    if (c === 'b' || c === 'B') {
      this.peeksAfter = true;
      return { min: 0, max: 0 };
    }
    if (/[1-9]/.test(c) || (c === 'k' && this.peek() === '<')) this.fail('backreferences are not allowed (their length is another group\'s)');
    if (c === 'u' && this.peek() === '{') {
      const close = this.pattern.indexOf('}', this.pos);
      if (close < 0) this.fail('unterminated \\u{...}');
      this.pos = close + 1;
    } else if ((c === 'p' || c === 'P') && this.peek() === '{') {
      const close = this.pattern.indexOf('}', this.pos);
      if (close < 0) this.fail(`unterminated \\${c}{...}`);
      this.pos = close + 1;
    } else if (c === 'u') this.pos += 4;
    else if (c === 'x') this.pos += 2;
    else if (c === 'c') this.pos += 1;
    return { min: 1, max: 1 };
  }

  private peek(): string {
    return this.pattern.charAt(this.pos);
  }

  private next(): string {
    return this.pattern.charAt(this.pos++);
  }
}

function isHighSurrogate(c: string): boolean {
  const code = c.charCodeAt(0);
  return code >= 0xd800 && code <= 0xdbff;
}

function isLowSurrogate(c: string): boolean {
  const code = c.charCodeAt(0);
  return code >= 0xdc00 && code <= 0xdfff;
}

/** UTF-16 code units one character of a regex with these flags can take. */
export function codeUnitsPerChar(flags: string): number {
  return flags.includes('u') || flags.includes('v') ? 2 : 1;
}

/**
 * The bounds of `pattern` under `flags`; throws InvalidArgumentError for a pattern that is not a
 * valid regex, or one refused above.
 */
export function regexBounds(pattern: string, flags: string): RegexBounds {
  try {
    new RegExp(pattern, flags);
  } catch (err) {
    throw new InvalidArgumentError(`regex /${pattern}/${flags} does not compile: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (flags.includes('v')) throw new InvalidArgumentError(`regex /${pattern}/${flags}: the v flag is not supported (use u)`);
  const parser = new PatternParser(pattern, flags.includes('u'));
  const span = parser.parseAll();
  return { minChars: span.min, maxChars: span.max, peeksAfter: parser.peeksAfter };
}
