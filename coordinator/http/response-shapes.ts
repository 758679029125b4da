/**
 * The JSON OpenAI's clients expect back, for the two dialects: chat (`chat.completion`,
 * `chat.completion.chunk`, a `delta` or `message` per choice, logprobs as `{content: [...]}`) and
 * text completions (`text_completion`, a `text` per choice, the legacy logprobs arrays). One
 * choice (index 0) always: n is 1. Field order is fixed, so a stream's bytes are predictable.
 */
import type { StreamFinishReason } from '../../common/generation/request';

export interface ResponseMeta {
  readonly id: string;
  /** Unix seconds. */
  readonly created: number;
  readonly model: string;
}

export interface Usage {
  readonly prompt_tokens: number;
  readonly completion_tokens: number;
  readonly total_tokens: number;
}

export type OpenAiFinishReason = 'stop' | 'length' | 'content_filter';

/** EOS and a stop string both end a completion "naturally": OpenAI's `stop`; the safety filter's block is `content_filter`. */
export function openAiFinishReason(reason: StreamFinishReason): OpenAiFinishReason {
  if (reason === 'content_filter') return 'content_filter';
  return reason === 'length' ? 'length' : 'stop';
}

export function usageOf(promptTokens: number, completionTokens: number): Usage {
  return { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
}

/** A generated token with its log-probability and the top alternatives, as text. */
export interface LoggedToken {
  readonly text: string;
  readonly logprob: number;
  readonly top: readonly { readonly text: string; readonly logprob: number }[];
}

const bytesOf = (text: string): number[] => [...Buffer.from(text, 'utf8')];

function chatLogprobs(tokens: readonly LoggedToken[] | undefined): unknown {
  if (tokens === undefined) return null;
  return {
    content: tokens.map((t) => ({
      token: t.text,
      logprob: t.logprob,
      bytes: bytesOf(t.text),
      top_logprobs: t.top.map((a) => ({ token: a.text, logprob: a.logprob, bytes: bytesOf(a.text) })),
    })),
  };
}

/** The legacy completions logprobs; `offset`: characters of completion text before the first token. */
function textLogprobs(tokens: readonly LoggedToken[] | undefined, offset: number): unknown {
  if (tokens === undefined) return null;
  const textOffset: number[] = [];
  let at = offset;
  for (const t of tokens) {
    textOffset.push(at);
    at += t.text.length;
  }
  return {
    tokens: tokens.map((t) => t.text),
    token_logprobs: tokens.map((t) => t.logprob),
    top_logprobs: tokens.map((t) => Object.fromEntries(t.top.map((a) => [a.text, a.logprob]))),
    text_offset: textOffset,
  };
}

/** What one streamed chunk carries. */
export interface ChunkPart {
  /** Undefined: the first chat chunk's role-only delta, or a final chunk's empty delta. */
  readonly text?: string;
  readonly logprobs?: readonly LoggedToken[];
  readonly finishReason: OpenAiFinishReason | null;
  /** Completion text characters sent before this chunk (legacy logprobs' text_offset). */
  readonly offset?: number;
}

export interface Dialect {
  readonly idPrefix: string;
  chunk(meta: ResponseMeta, part: ChunkPart, includeUsage: boolean): unknown;
  /** The last chunk, after the finish one, when stream_options.include_usage is set. */
  usageChunk(meta: ResponseMeta, usage: Usage): unknown;
  complete(meta: ResponseMeta, text: string, logprobs: readonly LoggedToken[] | undefined, finish: OpenAiFinishReason, usage: Usage): unknown;
}

export const CHAT: Dialect = {
  idPrefix: 'chatcmpl-',
  chunk: (meta, part, includeUsage) => ({
    id: meta.id,
    object: 'chat.completion.chunk',
    created: meta.created,
    model: meta.model,
    choices: [
      {
        index: 0,
        delta: part.text === undefined ? (part.finishReason === null ? { role: 'assistant', content: '' } : {}) : { content: part.text },
        logprobs: chatLogprobs(part.logprobs),
        finish_reason: part.finishReason,
      },
    ],
    ...(includeUsage ? { usage: null } : {}),
  }),
  usageChunk: (meta, usage) => ({ id: meta.id, object: 'chat.completion.chunk', created: meta.created, model: meta.model, choices: [], usage }),
  complete: (meta, text, logprobs, finish, usage) => ({
    id: meta.id,
    object: 'chat.completion',
    created: meta.created,
    model: meta.model,
    choices: [{ index: 0, message: { role: 'assistant', content: text }, logprobs: chatLogprobs(logprobs), finish_reason: finish }],
    usage,
  }),
};

export const TEXT: Dialect = {
  idPrefix: 'cmpl-',
  chunk: (meta, part, includeUsage) => ({
    id: meta.id,
    object: 'text_completion',
    created: meta.created,
    model: meta.model,
    choices: [{ index: 0, text: part.text ?? '', logprobs: textLogprobs(part.logprobs, part.offset ?? 0), finish_reason: part.finishReason }],
    ...(includeUsage ? { usage: null } : {}),
  }),
  usageChunk: (meta, usage) => ({ id: meta.id, object: 'text_completion', created: meta.created, model: meta.model, choices: [], usage }),
  complete: (meta, text, logprobs, finish, usage) => ({
    id: meta.id,
    object: 'text_completion',
    created: meta.created,
    model: meta.model,
    choices: [{ index: 0, text, logprobs: textLogprobs(logprobs, 0), finish_reason: finish }],
    usage,
  }),
};
