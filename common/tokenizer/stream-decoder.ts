/**
 * Streaming detokenisation: turns generated ids, one at a time, into text chunks such that
 *   push(id_0) + push(id_1) + ... + push(id_n) + flush() === tokenizer.decode([id_0, ..., id_n])
 * and no chunk ends inside a character: text that ends in U+FFFD (an incomplete UTF-8 sequence
 * from byte-fallback tokens, e.g. <0xE2><0x82> before <0xAC> makes '€') is held back until a
 * later token completes it or flush() gives up on it.
 *
 * Each push decodes a short window, not the whole sequence: ids[prefixStart, readStart) are the
 * tokens behind the last emitted chunk and give the context (the leading space of '▁word', the
 * first bytes of a character); the chunk is decode(ids[prefixStart, end)) minus
 * decode(ids[prefixStart, readStart)). Invariant: decode(ids[prefixStart, readStart)) ends on a
 * complete character, and its raw text is non-empty unless prefixStart is 0, so the tokenizer's
 * strip of one leading dummy-prefix space cancels out of the difference except at the very start,
 * where it belongs.
 */
import { InternalError } from '../errors';
import type { Tokenizer } from './tokenizer';

const REPLACEMENT_CHAR = '\uFFFD';

export class StreamDecoder {
  private readonly tokenizer: Tokenizer;
  private readonly ids: number[] = [];
  /** Start of the context window (see the file comment). */
  private prefixStart = 0;
  /** Tokens before this index have all been emitted as text. */
  private readStart = 0;
  private flushed = false;

  constructor(tokenizer: Tokenizer) {
    this.tokenizer = tokenizer;
  }

  /** Adds one id; returns the text it completes (often '', never a partial character). */
  push(id: number): string {
    if (this.flushed) throw new InternalError('StreamDecoder.push() after flush()');
    this.ids.push(id);
    const { emitted, fresh } = this.pending();
    // No new text (a special token, a dummy-prefix space) leaves the window as it is, which keeps
    // the window's context text non-empty.
    if (fresh.length <= emitted.length || fresh.endsWith(REPLACEMENT_CHAR) || !fresh.startsWith(emitted)) return '';
    this.prefixStart = this.readStart;
    this.readStart = this.ids.length;
    return fresh.slice(emitted.length);
  }

  /** Ends the stream: returns whatever is still held back, incomplete characters as U+FFFD. */
  flush(): string {
    if (this.flushed) return '';
    this.flushed = true;
    const { emitted, fresh } = this.pending();
    return fresh.startsWith(emitted) ? fresh.slice(emitted.length) : '';
  }

  /** Text of the window's context and of the whole window. */
  private pending(): { emitted: string; fresh: string } {
    const window = this.ids.slice(this.prefixStart);
    const emitted = this.tokenizer.decode(window.slice(0, this.readStart - this.prefixStart));
    const fresh = this.tokenizer.decode(window);
    return { emitted, fresh };
  }
}
