/**
 * A check on generated text as it streams (the coordinator's safety filter implements it:
 * coordinator/safety/). TextSink passes it each piece of text it would show; the filter returns
 * what may be shown now, holding back text that could still turn out to be filtered, and may end
 * the sequence: the stream then finishes with reason `content_filter` and the sequence stops.
 */

export interface TextFilterStep {
  /** Text to show now. */
  readonly release: string;
  /** The text was blocked: nothing more is shown and the sequence ends. */
  readonly blocked: boolean;
}

export interface TextFilter {
  push(text: string): TextFilterStep;
  /** The sequence ended: what was held back is settled and released (or blocked). */
  end(): TextFilterStep;
}
