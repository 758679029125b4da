/**
 * The safety filter (coordinator/safety/) on one HTTP completion request: its prompt text is
 * checked before it is tokenized and admitted, and its generated text gets an output filter for
 * the stream, as gRPC Generate and Chat get (safety/screen-request.ts).
 *
 * A chat request's messages are checked one by one (redactions apply to each message's text
 * before the chat template lays the conversation out); a completions prompt given as token ids
 * is decoded to be checked and, since it cannot be rewritten, any match blocks it. A blocked
 * prompt is a contentFilterError: 400, code `content_filter`, naming the field, before any worker
 * sees it. One safety request id covers the request's checks and its output, so its audit lines
 * go together.
 */
import type { TextFilter } from '../../common/generation/text-filter';
import { newSafetyRequestId, type SafetyFilter, type SafetyRequestContext } from '../safety/safety-filter';
import { contentFilterError } from './openai-error';

export interface PromptScreen {
  /** `text` as it may be run (redactions applied); throws contentFilterError(param) when blocked. */
  check(text: string, param: string, redactable: boolean): Promise<string>;
  /** The filter for the request's generated text; undefined when the policy checks none. */
  readonly output: TextFilter | undefined;
}

/** The screen for one request from `who` (an audit line's caller). */
export function promptScreen(safety: SafetyFilter, who: string): PromptScreen {
  const context: SafetyRequestContext = { request: newSafetyRequestId(), who };
  return {
    async check(text, param, redactable) {
      const verdict = await safety.checkPrompt(text, context, redactable);
      if (verdict.kind === 'blocked') throw contentFilterError(param);
      return verdict.text;
    },
    output: safety.checksOutput ? safety.openOutput(context) : undefined,
  };
}
