/**
 * The safety filter at the client API's edge: a request's prompt is checked before it is
 * generated from, and its stream gets an output filter. A blocked prompt never reaches the
 * workers; its stream is one finish event with reason `content_filter`, no tokens.
 */
import type { GenerationEvent, GenerationRequest } from '../../common/generation/request';
import type { TextFilter } from '../../common/generation/text-filter';
import { newSafetyRequestId, type SafetyFilter, type SafetyRequestContext } from './safety-filter';

export type Screened<T> =
  | { readonly kind: 'run'; readonly value: T; readonly output: TextFilter | undefined }
  | { readonly kind: 'blocked'; readonly finish: GenerationEvent };

/** The stream of a blocked prompt: it ends at once, before any token. */
export function blockedPromptFinish(): GenerationEvent {
  return { type: 'finish', reason: 'content_filter', text: '', promptTokens: 0, generatedTokens: 0, timeToFirstTokenMs: 0, totalMs: 0, resumes: 0 };
}

function context(who: string): SafetyRequestContext {
  return { request: newSafetyRequestId(), who };
}

/**
 * A Generate request, screened: a text prompt may come back redacted; a token-id prompt (ids or
 * an uploaded handle) is decoded to be checked, and any match blocks it.
 */
export async function screenGenerate(
  safety: SafetyFilter,
  request: GenerationRequest,
  who: string,
  decode: (ids: readonly number[]) => string,
): Promise<Screened<GenerationRequest>> {
  const ctx = context(who);
  const prompt = request.prompt;
  const verdict = prompt.kind === 'text' ? await safety.checkPrompt(prompt.text, ctx, true) : await safety.checkPrompt(decode(prompt.ids), ctx, false);
  if (verdict.kind === 'blocked') return { kind: 'blocked', finish: blockedPromptFinish() };
  const checked = prompt.kind === 'text' ? { ...request, prompt: { kind: 'text' as const, text: verdict.text } } : request;
  return { kind: 'run', value: checked, output: safety.checksOutput ? safety.openOutput(ctx) : undefined };
}

/** A chat turn's user message, screened (it may come back redacted). */
export async function screenChatTurn(safety: SafetyFilter, user: string, who: string): Promise<Screened<string>> {
  const ctx = context(who);
  const verdict = await safety.checkPrompt(user, ctx, true);
  if (verdict.kind === 'blocked') return { kind: 'blocked', finish: blockedPromptFinish() };
  return { kind: 'run', value: verdict.text, output: safety.checksOutput ? safety.openOutput(ctx) : undefined };
}
