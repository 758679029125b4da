/**
 * POST /v1/chat/completions and POST /v1/completions: one request from JSON body to response.
 *
 *   parse the body (request-fields.ts) -> the prompt as token ids (chat: the injected formatter)
 *   -> context and vocabulary checks (400) -> a plan must be serving (503) -> admission for the
 *   caller's key (429 with retry-after) -> the shared generation path (run-request.ts) ->
 *   one JSON response, or server-sent events as tokens arrive.
 *
 * Everything that can be refused is refused before the first byte of a stream, so a refusal is
 * always a proper status. A client that disconnects (the response closes before it finished)
 * cancels its request, which frees its KV cache on every stage; a failover during the request is
 * absorbed by the scheduler, which resumes the sequence token-exactly, so the client only sees a
 * pause.
 */
import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { NotFoundError, UnavailableError, asBoraError } from '../../common/errors';
import { checkPromptBytes } from '../../common/generation/prompt-limits';
import { validatePromptIds, type GenerationEvent, type GenerationRequest } from '../../common/generation/request';
import type { ApiKeyPrincipal } from '../../common/security/api-keys';
import type { ClientCall, ClientMethod } from '../client-gate';
import { MAX_UNSENT_EVENT_BYTES } from '../inference-service';
import { runAdmitted } from '../run-request';
import type { HttpApiDeps } from './http-deps';
import { fieldError, httpErrorOf } from './openai-error';
import { type ChatCompletionBody, type CompletionBody, DEFAULT_COMPLETION_MAX_TOKENS, parseChatCompletionBody, parseCompletionBody } from './request-fields';
import { CHAT, type Dialect, type LoggedToken, type ResponseMeta, TEXT, openAiFinishReason, usageOf } from './response-shapes';
import { SseWriter } from './sse-writer';

export type CompletionRoute = 'chat' | 'text';

/** What the handler hands back: a JSON body to send, or `streamed` when it wrote the response itself. */
export type CompletionResult = { readonly kind: 'json'; readonly body: unknown } | { readonly kind: 'streamed'; readonly status: number };

/** The gate method each route is admitted as (the same roles and limits as over gRPC). */
export const ROUTE_METHOD: Readonly<Record<CompletionRoute, ClientMethod>> = { chat: 'Chat', text: 'Generate' };

type FinishEvent = Extract<GenerationEvent, { type: 'finish' }>;

async function promptIdsOf(deps: HttpApiDeps, route: CompletionRoute, body: ChatCompletionBody | CompletionBody): Promise<number[]> {
  if (route === 'chat') {
    const { messages } = body as ChatCompletionBody;
    // The byte limit covers all the conversation's text, checked before any of it is tokenized.
    try {
      checkPromptBytes(messages.map((m) => m.content).join(''), deps.maxPromptBytes, 'the messages\' text (all messages together)');
    } catch (err) {
      throw fieldError('messages', asBoraError(err).message);
    }
    return deps.chatPrompt(messages);
  }
  const { prompt } = body as CompletionBody;
  if (prompt.kind === 'ids') return [...prompt.ids];
  try {
    checkPromptBytes(prompt.text, deps.maxPromptBytes);
  } catch (err) {
    throw fieldError('prompt', asBoraError(err).message);
  }
  return deps.encode(prompt.text, { addBos: true });
}

/** The request's max_tokens, defaulted, after checking that prompt and completion fit the context. */
function maxTokensOf(deps: HttpApiDeps, route: CompletionRoute, body: ChatCompletionBody | CompletionBody, ids: readonly number[]): number {
  const context = deps.config.maxPositionEmbeddings;
  const promptParam = route === 'chat' ? 'messages' : 'prompt';
  if (ids.length >= context) {
    throw fieldError(promptParam, `the prompt is ${ids.length} tokens; the model's context is ${context} tokens, and at least one must be left to generate`);
  }
  const room = context - ids.length;
  const maxTokens = body.maxTokens ?? (route === 'chat' ? room : Math.min(DEFAULT_COMPLETION_MAX_TOKENS, room));
  if (maxTokens > room) {
    throw fieldError('max_tokens', `max_tokens is ${maxTokens}, but the prompt (${ids.length} tokens) leaves room for ${room} in the model's context of ${context} tokens`);
  }
  try {
    validatePromptIds(ids, maxTokens, deps.config as Parameters<typeof validatePromptIds>[2], context);
  } catch (err) {
    throw fieldError(promptParam, asBoraError(err).message);
  }
  return maxTokens;
}

function loggedToken(deps: HttpApiDeps, event: Extract<GenerationEvent, { type: 'token' }>): LoggedToken | undefined {
  if (event.logprobs === undefined) return undefined;
  const text = (id: number): string => deps.tokenizer.decode([id]);
  return { text: text(event.tokenId), logprob: event.logprobs.logprob, top: event.logprobs.top.map((a) => ({ text: text(a.tokenId), logprob: a.logprob })) };
}

/**
 * Serves one completion request for `who` (already authenticated). Resolves with the JSON to
 * send, or after streaming the response itself; rejects with the error to answer with when
 * nothing has been sent yet.
 */
export async function serveCompletion(
  deps: HttpApiDeps,
  route: CompletionRoute,
  rawBody: unknown,
  who: ApiKeyPrincipal,
  call: ClientCall,
  res: ServerResponse,
  takeOver: () => void,
): Promise<CompletionResult> {
  const body = route === 'chat' ? parseChatCompletionBody(rawBody) : parseCompletionBody(rawBody);
  if (body.model !== undefined && deps.modelId !== '' && body.model !== deps.modelId) {
    throw new NotFoundError(`unknown model "${body.model.slice(0, 200)}"; this server serves "${deps.modelId}"`);
  }
  const ids = await promptIdsOf(deps, route, body);
  const maxTokens = maxTokensOf(deps, route, body, ids);
  if (!deps.hasPipeline()) throw new UnavailableError('no plan is serving the model right now (workers are joining or recovering); retry later');
  deps.checkServing?.();

  // The client going away, at any point from here: ends a wait for admission, cancels the request.
  const gone = new AbortController();
  let cancel: (() => void) | undefined;
  res.on('close', () => {
    if (res.writableFinished) return;
    gone.abort();
    cancel?.();
  });
  const ticket = await deps.gate.admit(who, call, ROUTE_METHOD[route], gone.signal);
  const request: GenerationRequest = {
    prompt: { kind: 'ids', ids },
    maxTokens,
    sampling: body.sampling,
    stop: body.stop,
    ignoreEos: false,
    returnFirstLogits: false,
    ...(body.logprobs === undefined ? {} : { logprobs: body.logprobs }),
  };
  const dialect = route === 'chat' ? CHAT : TEXT;
  const meta: ResponseMeta = { id: `${dialect.idPrefix}${randomUUID().replaceAll('-', '')}`, created: Math.floor(Date.now() / 1000), model: deps.modelId };
  const onCancel = (c: () => void): void => {
    cancel = c;
    if (gone.signal.aborted) c();
  };
  if (!body.stream) {
    let text = '';
    const logged: LoggedToken[] | undefined = body.logprobs === undefined ? undefined : [];
    let finish: FinishEvent | undefined;
    await runAdmitted(deps, request, ticket, (event) => {
      text += event.text;
      if (event.type === 'finish') finish = event;
      else logged?.push(loggedToken(deps, event)!);
    }, onCancel);
    const f = finish!;
    return { kind: 'json', body: dialect.complete(meta, text, logged, openAiFinishReason(f.reason), usageOf(f.promptTokens, f.generatedTokens)) };
  }
  takeOver();
  return streamCompletion(deps, dialect, meta, body.includeUsage, res, (write) => runAdmitted(deps, request, ticket, write, onCancel), () => cancel?.());
}

async function streamCompletion(
  deps: HttpApiDeps,
  dialect: Dialect,
  meta: ResponseMeta,
  includeUsage: boolean,
  res: ServerResponse,
  run: (write: (event: GenerationEvent) => void) => Promise<void>,
  cancel: () => void,
): Promise<CompletionResult> {
  const sse = new SseWriter(res, deps.maxUnsentEventBytes ?? MAX_UNSENT_EVENT_BYTES, () => {
    cancel();
    deps.log?.('cut off an HTTP stream whose client stopped reading');
  });
  sse.open();
  if (dialect === CHAT) sse.send(dialect.chunk(meta, { finishReason: null }, includeUsage));
  let offset = 0;
  try {
    await run((event) => {
      if (event.type === 'token') {
        const logged = loggedToken(deps, event);
        if (event.text === '' && logged === undefined) return;
        sse.send(dialect.chunk(meta, { text: event.text, logprobs: logged === undefined ? undefined : [logged], finishReason: null, offset }, includeUsage));
        offset += event.text.length;
        return;
      }
      if (event.text !== '') sse.send(dialect.chunk(meta, { text: event.text, finishReason: null, offset }, includeUsage));
      sse.send(dialect.chunk(meta, { finishReason: openAiFinishReason(event.reason), ...(dialect === TEXT ? { text: '' } : {}) }, includeUsage));
      if (includeUsage) sse.send(dialect.usageChunk(meta, usageOf(event.promptTokens, event.generatedTokens)));
    });
  } catch (err) {
    const answer = httpErrorOf(err);
    sse.fail(answer.body);
    return { kind: 'streamed', status: answer.status };
  }
  sse.done();
  return { kind: 'streamed', status: 200 };
}
