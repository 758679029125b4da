/**
 * A sequence's token events under a TextFilter (the safety filter). Each token's text goes
 * through the filter, and the token's event waits until the filter has settled all of that text:
 * a client never sees a token whose text could still be redacted or blocked. The released text
 * rides on the next event to go out. A token with any filtered text is marked `filtered`: clients
 * get HIDDEN_TOKEN_ID for it (generate-codec.ts), while the coordinator keeps the real id (a chat's
 * context). Event order, indexes and count are those of the unfiltered stream.
 */
import type { FilteredSpan, TextFilter, TextFilterStep } from './text-filter';
import type { GenerationEvent } from './request';

type TokenEvent = GenerationEvent & { type: 'token' };

interface Waiting {
  readonly event: TokenEvent;
  /** The token's text in the pushed stream: [start, end). */
  readonly start: number;
  readonly end: number;
}

export class FilteredTokens {
  private readonly waiting: Waiting[] = [];
  private readonly filtered: FilteredSpan[] = [];
  private pushedChars = 0;
  private released = '';

  constructor(
    private readonly filter: TextFilter,
    private readonly emit: (event: TokenEvent) => void,
  ) {}

  /** One token and the text it completed; true when the filter blocked (the sequence must end). */
  token(event: TokenEvent): boolean {
    const start = this.pushedChars;
    this.pushedChars += event.text.length;
    this.waiting.push({ event, start, end: this.pushedChars });
    return this.take(this.filter.push(event.text));
  }

  /**
   * The sequence ended without a block so far: `tail` (text no token carries) is pushed, the
   * filter settles everything, and every waiting event goes out. Returns the text left for the
   * finish event (when no token event could carry it) and whether the filter blocked.
   */
  end(tail: string): { text: string; blocked: boolean } {
    this.pushedChars += tail.length;
    const last = this.filter.push(tail);
    const rest = last.blocked ? undefined : this.filter.end();
    this.take({
      release: last.release + (rest?.release ?? ''),
      blocked: last.blocked || rest!.blocked,
      settledChars: Infinity,
      filtered: [...last.filtered, ...(rest?.filtered ?? [])],
    });
    const text = this.released;
    this.released = '';
    return { text, blocked: last.blocked || rest!.blocked };
  }

  /** Takes a filter step: the events whose text is now settled go out, the released text on the last of them. */
  private take(step: TextFilterStep): boolean {
    this.released += step.release;
    this.filtered.push(...step.filtered);
    while (this.waiting.length > 0 && this.waiting[0]!.end <= step.settledChars) {
      const w = this.waiting.shift()!;
      const hidden = this.filtered.some((f) => w.start < f.end && Math.max(w.end, w.start + 1) > f.start);
      const last = this.waiting.length === 0 || this.waiting[0]!.end > step.settledChars;
      // A filtered token's logprobs would name it (and its alternatives): they go too.
      const { logprobs, ...event } = w.event;
      this.emit({ ...event, text: last ? this.released : '', ...(hidden ? { filtered: true } : logprobs === undefined ? {} : { logprobs }) });
      if (last) this.released = '';
    }
    return step.blocked;
  }
}
