/**
 * A check on generated text as it streams (the coordinator's safety filter implements it:
 * coordinator/safety/). TextSink passes it each piece of text it would show; the filter returns
 * what may be shown now, holding back text that could still turn out to be filtered, and may end
 * the sequence: the stream then finishes with reason `content_filter` and the sequence stops.
 * TextSink also holds each token event back until the filter has settled its text, and hides
 * the id of a token whose text was filtered (HIDDEN_TOKEN_ID), so that ids cannot give it away.
 */

/** A stretch of the pushed text, in code units from the start of the stream, that was filtered. */
export interface FilteredSpan {
  readonly start: number;
  /** Infinity for a block: everything from `start` on. */
  readonly end: number;
}

export interface TextFilterStep {
  /** Text to show now. */
  readonly release: string;
  /** The text was blocked: nothing more is shown and the sequence ends. */
  readonly blocked: boolean;
  /** Pushed text settled so far (code units from the start; Infinity once blocked): the filter will not change it any more. */
  readonly settledChars: number;
  /** Text filtered (redacted or blocked) in this step. */
  readonly filtered: readonly FilteredSpan[];
}

export interface TextFilter {
  push(text: string): TextFilterStep;
  /** The sequence ended: what was held back is settled and released (or blocked). */
  end(): TextFilterStep;
}

/** The token_id of a token whose text the filter redacted or blocked. */
export const HIDDEN_TOKEN_ID = 0;
