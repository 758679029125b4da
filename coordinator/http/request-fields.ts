/**
 * The JSON bodies of POST /v1/chat/completions and POST /v1/completions, checked field by field
 * into typed requests. Every field OpenAI defines that Bora does not honour, and every unknown
 * one, is refused with a 400 naming it: silently ignoring (say) `frequency_penalty` would return
 * text the client did not ask for.
 *
 * Honoured: model, messages | prompt, max_tokens / max_completion_tokens, temperature, top_p,
 * seed, stop, stream, stream_options.include_usage, logprobs / top_logprobs, n = 1.
 * `temperature: 0` is greedy decoding; otherwise sampling is seeded (a random seed when none is
 * given), so that a resumed sequence draws the same tokens after a failover.
 */
import { randomBytes } from 'node:crypto';
import { MAX_TOP_LOGPROBS } from '../../common/sampling/logprobs';
import type { SamplingParams } from '../../common/sampling/sampler';
import { CHAT_ROLES, type ChatMessage, type ChatRole } from './chat-prompt';
import { fieldError } from './openai-error';

/** OpenAI's limit on stop sequences. */
export const MAX_STOP_STRINGS = 4;
/** OpenAI's limit on the legacy completions `logprobs`. */
export const MAX_COMPLETION_LOGPROBS = 5;
/** OpenAI's default max_tokens for /v1/completions (chat defaults to the rest of the context). */
export const DEFAULT_COMPLETION_MAX_TOKENS = 16;

export interface CommonFields {
  readonly model: string | undefined;
  readonly maxTokens: number | undefined;
  readonly sampling: SamplingParams;
  readonly stop: readonly string[];
  readonly stream: boolean;
  readonly includeUsage: boolean;
  /** Alternatives per token to report; undefined: no logprobs. */
  readonly logprobs: number | undefined;
}

export interface ChatCompletionBody extends CommonFields {
  readonly messages: readonly ChatMessage[];
}

export type CompletionPrompt = { readonly kind: 'text'; readonly text: string } | { readonly kind: 'ids'; readonly ids: readonly number[] };

export interface CompletionBody extends CommonFields {
  readonly prompt: CompletionPrompt;
}

type Json = Record<string, unknown>;

const COMMON_FIELDS = ['model', 'max_tokens', 'max_completion_tokens', 'temperature', 'top_p', 'seed', 'stop', 'stream', 'stream_options', 'n'];
const CHAT_FIELDS = new Set([...COMMON_FIELDS, 'messages', 'logprobs', 'top_logprobs']);
const COMPLETION_FIELDS = new Set([...COMMON_FIELDS, 'prompt', 'logprobs']);

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `${typeof value} ${JSON.stringify(value)?.slice(0, 40)}`;
}

function objectBody(raw: unknown): Json {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw fieldError('body', `the request body must be a JSON object, got ${describe(raw)}`);
  return raw as Json;
}

function checkKnown(body: Json, allowed: ReadonlySet<string>): void {
  for (const key of Object.keys(body)) {
    if (!allowed.has(key)) throw fieldError(key, `unsupported field "${key.slice(0, 64)}": this server honours ${[...allowed].join(', ')}`);
  }
}

/** An absent field, or one sent as null (OpenAI's "use the default"). */
const absent = (v: unknown): v is undefined | null => v === undefined || v === null;

function optionalInteger(body: Json, name: string, min: number, max: number): number | undefined {
  const v = body[name];
  if (absent(v)) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) throw fieldError(name, `${name} must be an integer in [${min}, ${max}], got ${describe(v)}`);
  return v;
}

function optionalNumber(body: Json, name: string, min: number, max: number, minExclusive = false): number | undefined {
  const v = body[name];
  if (absent(v)) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v > max || v < min || (minExclusive && v === min)) {
    throw fieldError(name, `${name} must be a number in ${minExclusive ? '(' : '['}${min}, ${max}], got ${describe(v)}`);
  }
  return v;
}

function optionalBoolean(body: Json, name: string): boolean | undefined {
  const v = body[name];
  if (absent(v)) return undefined;
  if (typeof v !== 'boolean') throw fieldError(name, `${name} must be a boolean, got ${describe(v)}`);
  return v;
}

function randomSeed(): bigint {
  return randomBytes(8).readBigUInt64BE();
}

function samplingOf(body: Json): SamplingParams {
  const temperature = optionalNumber(body, 'temperature', 0, 2) ?? 1;
  const topP = optionalNumber(body, 'top_p', 0, 1, true) ?? 1;
  const seed = optionalInteger(body, 'seed', 0, Number.MAX_SAFE_INTEGER);
  if (temperature === 0) return { kind: 'greedy' };
  return { kind: 'random', temperature, topK: 0, topP, seed: seed === undefined ? randomSeed() : BigInt(seed) };
}

function stopOf(body: Json): string[] {
  const v = body.stop;
  if (absent(v)) return [];
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.length > MAX_STOP_STRINGS) throw fieldError('stop', `stop must be a string or an array of at most ${MAX_STOP_STRINGS} strings, got ${describe(v)}`);
  return list.map((s: unknown, i) => {
    if (typeof s !== 'string' || s === '') throw fieldError(`stop.${i}`, `stop sequences must be non-empty strings, got ${describe(s)}`);
    return s;
  });
}

function commonOf(body: Json, logprobs: number | undefined): CommonFields {
  const model = body.model;
  if (!absent(model) && typeof model !== 'string') throw fieldError('model', `model must be a string, got ${describe(model)}`);
  const n = optionalInteger(body, 'n', 1, Number.MAX_SAFE_INTEGER);
  if (n !== undefined && n !== 1) throw fieldError('n', `n must be 1 (one choice per request), got ${n}`);
  const maxTokens = optionalInteger(body, 'max_tokens', 1, Number.MAX_SAFE_INTEGER);
  const maxCompletionTokens = optionalInteger(body, 'max_completion_tokens', 1, Number.MAX_SAFE_INTEGER);
  if (maxTokens !== undefined && maxCompletionTokens !== undefined && maxTokens !== maxCompletionTokens) {
    throw fieldError('max_completion_tokens', `max_tokens (${maxTokens}) and max_completion_tokens (${maxCompletionTokens}) disagree; send one`);
  }
  const stream = optionalBoolean(body, 'stream') ?? false;
  let includeUsage = false;
  const options = body.stream_options;
  if (!absent(options)) {
    if (!stream) throw fieldError('stream_options', 'stream_options is only allowed with stream: true');
    if (typeof options !== 'object' || Array.isArray(options)) throw fieldError('stream_options', `stream_options must be an object, got ${describe(options)}`);
    const o = options as Json;
    for (const key of Object.keys(o)) if (key !== 'include_usage') throw fieldError(`stream_options.${key.slice(0, 64)}`, `unsupported field "stream_options.${key.slice(0, 64)}": this server honours include_usage`);
    const usage = o.include_usage;
    if (!absent(usage) && typeof usage !== 'boolean') throw fieldError('stream_options.include_usage', `stream_options.include_usage must be a boolean, got ${describe(usage)}`);
    includeUsage = usage === true;
  }
  return { model: absent(model) ? undefined : model, maxTokens: maxCompletionTokens ?? maxTokens, sampling: samplingOf(body), stop: stopOf(body), stream, includeUsage, logprobs };
}

/** A message's content: a string, or an array of text parts (OpenAI's content parts). */
function contentOf(raw: unknown, where: string): string {
  if (typeof raw === 'string') return raw;
  if (!Array.isArray(raw)) throw fieldError(where, `${where} must be a string or an array of text parts, got ${describe(raw)}`);
  return raw
    .map((part: unknown, j) => {
      const p = part as Json;
      if (part === null || typeof part !== 'object' || Array.isArray(part) || p.type !== 'text' || typeof p.text !== 'string') {
        throw fieldError(`${where}.${j}`, `${where}.${j} must be {"type": "text", "text": string} (only text parts are supported)`);
      }
      for (const key of Object.keys(p)) if (key !== 'type' && key !== 'text') throw fieldError(`${where}.${j}.${key.slice(0, 64)}`, `unsupported field "${key.slice(0, 64)}" in ${where}.${j}`);
      return p.text;
    })
    .join('');
}

function messagesOf(raw: unknown): ChatMessage[] {
  if (!Array.isArray(raw)) throw fieldError('messages', `messages must be an array, got ${describe(raw)}`);
  if (raw.length === 0) throw fieldError('messages', 'messages must hold at least one message');
  return raw.map((m: unknown, i) => {
    const where = `messages.${i}`;
    if (m === null || typeof m !== 'object' || Array.isArray(m)) throw fieldError(where, `${where} must be an object, got ${describe(m)}`);
    const message = m as Json;
    for (const key of Object.keys(message)) {
      if (key !== 'role' && key !== 'content') throw fieldError(`${where}.${key.slice(0, 64)}`, `unsupported field "${key.slice(0, 64)}" in ${where}: a message has role and content`);
    }
    const role = message.role;
    if (typeof role !== 'string' || !(CHAT_ROLES as readonly string[]).includes(role)) {
      throw fieldError(`${where}.role`, `${where}.role must be one of ${CHAT_ROLES.join(', ')}, got ${describe(role)}`);
    }
    return { role: role as ChatRole, content: contentOf(message.content, `${where}.content`) };
  });
}

export function parseChatCompletionBody(raw: unknown): ChatCompletionBody {
  const body = objectBody(raw);
  checkKnown(body, CHAT_FIELDS);
  const messages = messagesOf(body.messages);
  const wantLogprobs = optionalBoolean(body, 'logprobs') ?? false;
  const top = optionalInteger(body, 'top_logprobs', 0, MAX_TOP_LOGPROBS);
  if (top !== undefined && !wantLogprobs) throw fieldError('top_logprobs', 'top_logprobs needs logprobs: true');
  return { ...commonOf(body, wantLogprobs ? (top ?? 0) : undefined), messages };
}

function promptOf(raw: unknown): CompletionPrompt {
  // A batch of one is accepted in either form; more than one would need n choices.
  const one = Array.isArray(raw) && raw.length === 1 && (typeof raw[0] === 'string' || Array.isArray(raw[0])) ? raw[0] : raw;
  if (typeof one === 'string') {
    if (one === '') throw fieldError('prompt', 'prompt is empty');
    return { kind: 'text', text: one };
  }
  if (Array.isArray(one) && one.length > 0 && one.every((id) => typeof id === 'number' && Number.isSafeInteger(id) && id >= 0)) return { kind: 'ids', ids: one as number[] };
  throw fieldError('prompt', `prompt must be a non-empty string or array of token ids (one prompt per request), got ${describe(raw)}`);
}

export function parseCompletionBody(raw: unknown): CompletionBody {
  const body = objectBody(raw);
  checkKnown(body, COMPLETION_FIELDS);
  if (absent(body.prompt)) throw fieldError('prompt', 'prompt is required');
  const prompt = promptOf(body.prompt);
  return { ...commonOf(body, optionalInteger(body, 'logprobs', 0, MAX_COMPLETION_LOGPROBS)), prompt };
}
