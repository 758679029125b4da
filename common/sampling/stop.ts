/**
 * When a generated sequence ends, and which of its text a streaming client may see.
 *
 * Fed each generated token id with the text it completed (StreamDecoder output), it decides:
 *  - 'eos': the token is EOS; its own text is never shown;
 *  - 'stop': a stop string has appeared in the text; the text is cut just before it, and
 *    neither the stop string nor anything after it is shown;
 *  - 'length': the sequence reached maxTokens (EOS and stop strings take precedence on that token).
 * Stop strings may span tokens, so text that could be the start of one (a suffix that is a proper
 * prefix of a stop string) is withheld until later text settles it; it is released as soon as it
 * cannot be, when the sequence ends for another reason, or by flush().
 *
 * Invariant: `held` is the longest suffix of the text so far that is a proper prefix of a stop
 * string. Hence a stop string can never begin inside text already emitted, and scanning
 * held + new text finds every match. Among several matches the one that ends first wins (then the
 * one that starts first), which is what arrival order would decide, however the text is chunked.
 */
import { InternalError, InvalidArgumentError } from '../errors';

export type FinishReason = 'eos' | 'length' | 'stop';

/** What push() decided: text to show now, and the finish reason once the sequence is done. */
export type StopStep =
  | { readonly emit: string; readonly finish?: undefined }
  | { readonly emit: string; readonly finish: FinishReason };

export interface StopOptions {
  readonly eosId: number;
  /** More ids that end the sequence as EOS does (a chat template's end-of-turn token, ...). */
  readonly moreEosIds?: readonly number[];
  /** Generated tokens allowed, EOS included; >= 1. */
  readonly maxTokens: number;
  /** Non-empty strings; generation ends before the first one to appear. */
  readonly stopStrings: readonly string[];
}

export class StopCondition {
  private readonly eosIds: ReadonlySet<number>;
  private readonly maxTokens: number;
  private readonly stopStrings: readonly string[];
  private held = '';
  private tokens = 0;
  private finished: FinishReason | null = null;

  constructor(opts: StopOptions) {
    if (!Number.isSafeInteger(opts.eosId) || opts.eosId < 0) {
      throw new InvalidArgumentError(`eosId must be a token id, got ${opts.eosId}`);
    }
    if (!Number.isSafeInteger(opts.maxTokens) || opts.maxTokens < 1) {
      throw new InvalidArgumentError(`maxTokens must be an integer >= 1, got ${opts.maxTokens}`);
    }
    for (const s of opts.stopStrings) {
      if (typeof s !== 'string' || s === '') throw new InvalidArgumentError('stop strings must be non-empty strings');
    }
    for (const id of opts.moreEosIds ?? []) {
      if (!Number.isSafeInteger(id) || id < 0) throw new InvalidArgumentError(`moreEosIds must be token ids, got ${id}`);
    }
    this.eosIds = new Set([opts.eosId, ...(opts.moreEosIds ?? [])]);
    this.maxTokens = opts.maxTokens;
    this.stopStrings = [...opts.stopStrings];
  }

  /** Generated tokens seen so far. */
  get tokenCount(): number {
    return this.tokens;
  }

  /** Why the sequence ended; null while it goes on. */
  get finishReason(): FinishReason | null {
    return this.finished;
  }

  /** Characters (UTF-16 code units) withheld from the client right now, pending a possible stop string. */
  get heldChars(): number {
    return this.held.length;
  }

  /** One generated token and the text it completed. Calling it after the sequence ended is a bug. */
  push(id: number, newText: string): StopStep {
    if (this.finished !== null) throw new InternalError(`StopCondition.push() after the sequence finished (${this.finished})`);
    this.tokens++;
    if (this.eosIds.has(id)) return this.finish('eos', this.takeHeld());
    const text = this.held + newText;
    const stopAt = this.firstStop(text);
    if (stopAt >= 0) {
      this.held = '';
      return this.finish('stop', text.slice(0, stopAt));
    }
    const keep = this.pendingPrefixLength(text);
    this.held = text.slice(text.length - keep);
    const emit = text.slice(0, text.length - keep);
    if (this.tokens >= this.maxTokens) return this.finish('length', emit + this.takeHeld());
    return { emit };
  }

  /** Releases withheld text, e.g. when generation is cut short from outside. */
  flush(): string {
    return this.takeHeld();
  }

  private finish(reason: FinishReason, emit: string): StopStep {
    this.finished = reason;
    return { emit, finish: reason };
  }

  private takeHeld(): string {
    const text = this.held;
    this.held = '';
    return text;
  }

  /** Start of the stop string that ends first in `text` (the longest one among those); -1 if none. */
  private firstStop(text: string): number {
    let bestStart = -1;
    let bestEnd = Infinity;
    for (const s of this.stopStrings) {
      const start = text.indexOf(s);
      if (start < 0) continue;
      const end = start + s.length;
      if (end < bestEnd || (end === bestEnd && start < bestStart)) {
        bestStart = start;
        bestEnd = end;
      }
    }
    return bestStart;
  }

  /** Length of the longest suffix of `text` that is a proper prefix of some stop string. */
  private pendingPrefixLength(text: string): number {
    let longest = 0;
    for (const s of this.stopStrings) {
      for (let k = Math.min(s.length - 1, text.length); k > longest; k--) {
        if (text.endsWith(s.slice(0, k))) {
          longest = k;
          break;
        }
      }
    }
    return longest;
  }
}
