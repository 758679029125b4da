/**
 * Applies a policy's rules to text that arrives in pieces, releasing it as soon as no rule can
 * still match over it.
 *
 * What is released is, whatever the chunking, what one pass over the whole text gives: scanning
 * from the left, the earliest position where some rule matches (the first rule in policy order on
 * a tie) is acted on; a `redact` match is replaced by its rule's replacement and the scan goes on
 * after it; a `block` match ends the text there (nothing from the match on is released).
 *
 * Why that holds: each rule's RegExp has no lookaround or backreference (rules.ts refuses them),
 * so whether and how it matches at a position depends only on the one code unit before (`^` with
 * m, `\b`) and the rule's needChars code units from there. The unreleased text `pending` is
 * scanned together with the last two released code units (`before`); a match is acted on only
 * once every rule's outcome at every position up to it is settled, and text is released only up
 * to the first position where some rule could still begin a match (CompiledRule.couldStart).
 * At end() everything is settled.
 */
import type { CompiledRule, SafetyAction } from './rules';

/** A match that was acted on. */
export interface RuleMatch {
  readonly rule: CompiledRule;
  readonly action: SafetyAction;
  /** Offset of the match in the whole text pushed so far (code units). */
  readonly offset: number;
  readonly lengthChars: number;
}

export interface MatchStep {
  /** Text to show now (redactions applied). */
  readonly release: string;
  /** Matches acted on in this step, in text order; a `block` one is last. */
  readonly matches: readonly RuleMatch[];
  /** Set when a `block` match ended the text: nothing more will be released. */
  readonly blocked?: RuleMatch;
}

/** The earliest match of one rule in the unsettled text, or how early one could still start. */
type RuleState = { readonly settled: true; readonly at: number; readonly end: number } | { readonly settled: false; readonly from: number };

export class StreamMatcher {
  private pending = '';
  /** Offset of `pending` in the whole text. */
  private pendingOffset = 0;
  /** The last released (original, unredacted) code units, for `\b` and `^` at pending's start. */
  private before = '';
  private blocked: RuleMatch | undefined;
  private ended = false;

  constructor(private readonly rules: readonly CompiledRule[]) {}

  /** Code units of the pushed text settled so far (released, redacted, or cut by a block). */
  get settledChars(): number {
    return this.blocked === undefined ? this.pendingOffset : Infinity;
  }

  /** Text still held back (for tests and the hold-back bound). */
  get heldBack(): string {
    return this.pending;
  }

  push(text: string): MatchStep {
    if (this.ended || this.blocked !== undefined) return { release: '', matches: [] };
    this.pending += text;
    return this.scan(false);
  }

  /** The text is complete: everything left is settled and released. */
  end(): MatchStep {
    if (this.ended || this.blocked !== undefined) return { release: '', matches: [] };
    const step = this.scan(true);
    this.ended = true;
    return step;
  }

  private scan(final: boolean): MatchStep {
    let release = '';
    const matches: RuleMatch[] = [];
    for (;;) {
      const states = this.rules.map((r) => this.stateOf(r, final));
      // The first position where some rule matches or could still begin to.
      let earliest = this.pending.length;
      for (const s of states) earliest = Math.min(earliest, s.settled ? s.at : s.from);
      const winner = states.findIndex((s) => (s.settled ? s.at : s.from) === earliest);
      const state = winner < 0 ? undefined : states[winner]!;
      if (state === undefined || !state.settled) {
        // No rule can match before `earliest`: that much is released (never half a surrogate
        // pair, which would reach the client as U+FFFD); the rest waits.
        const cut = earliest > 0 && isLowSurrogate(this.pending.charCodeAt(earliest)) && isHighSurrogate(this.pending.charCodeAt(earliest - 1)) ? earliest - 1 : earliest;
        release += this.take(cut);
        return { release, matches };
      }
      const rule = this.rules[winner]!;
      const match: RuleMatch = { rule, action: rule.spec.action, offset: this.pendingOffset + state.at, lengthChars: state.end - state.at };
      matches.push(match);
      release += this.pending.slice(0, state.at);
      if (rule.spec.action === 'block') {
        this.blocked = match;
        this.pending = '';
        return { release, matches, blocked: match };
      }
      release += rule.spec.replacement;
      this.take(state.end);
    }
  }

  /** Drops `count` code units from pending (keeping the last two for context) and returns them. */
  private take(count: number): string {
    const gone = this.pending.slice(0, count);
    this.before = (this.before + gone).slice(-2);
    this.pending = this.pending.slice(count);
    this.pendingOffset += count;
    return gone;
  }

  private stateOf(rule: CompiledRule, final: boolean): RuleState {
    const text = this.before + this.pending;
    const skip = this.before.length;
    rule.regex.lastIndex = skip;
    const m = rule.regex.exec(text);
    const length = this.pending.length;
    const at = m === null ? undefined : m.index - skip;
    // Positions from here on are not settled for this rule: more text could change them.
    const unsettledFrom = final ? length : Math.max(0, length - rule.needChars + 1);
    if (at !== undefined && at < unsettledFrom) return { settled: true, at, end: at + m![0].length };
    if (final) return { settled: false, from: length };
    for (let from = unsettledFrom; from < length; from++) {
      if (at !== undefined && from === at) return { settled: false, from };
      if (rule.couldStart(this.pending.slice(from))) return { settled: false, from };
    }
    return { settled: false, from: length };
  }
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}
