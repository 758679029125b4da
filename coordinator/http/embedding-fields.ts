/**
 * The JSON body of POST /v1/embeddings, checked into typed inputs (OpenAI's request shape):
 *
 *   input            a string, an array of strings, an array of token ids (one input), or an
 *                    array of arrays of token ids; none of them empty
 *   model            optional; another model than the served one is a 404
 *   encoding_format  "float" (default) or "base64" (little-endian float32 bytes, which the
 *                    official clients ask for and decode)
 *
 * Any other field (`dimensions`, `user`, ...) is refused with a 400 naming it, as the completion
 * routes refuse what they do not honour.
 */
import type { EmbeddingInput } from '../embeddings';
import { fieldError } from './openai-error';

export type EmbeddingEncoding = 'float' | 'base64';

export interface EmbeddingsBody {
  readonly model: string | undefined;
  readonly inputs: readonly EmbeddingInput[];
  readonly encoding: EmbeddingEncoding;
}

const FIELDS = new Set(['input', 'model', 'encoding_format']);

const isTokenId = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `${typeof value} ${JSON.stringify(value)?.slice(0, 40)}`;
}

function inputsOf(raw: unknown): EmbeddingInput[] {
  if (raw === undefined || raw === null) throw fieldError('input', 'input is required');
  if (typeof raw === 'string') {
    if (raw === '') throw fieldError('input', 'input is an empty string');
    return [{ kind: 'text', text: raw }];
  }
  if (!Array.isArray(raw) || raw.length === 0) {
    throw fieldError('input', `input must be a non-empty string, array of strings, array of token ids or array of arrays of token ids, got ${describe(raw)}`);
  }
  // One input given as token ids.
  if (raw.every(isTokenId)) return [{ kind: 'ids', ids: raw }];
  return raw.map((item: unknown, i) => {
    if (typeof item === 'string') {
      if (item === '') throw fieldError(`input.${i}`, `input.${i} is an empty string`);
      return { kind: 'text', text: item };
    }
    if (Array.isArray(item) && item.length > 0 && item.every(isTokenId)) return { kind: 'ids', ids: item };
    throw fieldError(`input.${i}`, `input.${i} must be a non-empty string or a non-empty array of token ids (non-negative integers), got ${describe(item)}`);
  });
}

export function parseEmbeddingsBody(raw: unknown): EmbeddingsBody {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw fieldError('body', `the request body must be a JSON object, got ${describe(raw)}`);
  const body = raw as Record<string, unknown>;
  for (const key of Object.keys(body)) {
    if (!FIELDS.has(key)) throw fieldError(key, `unsupported field "${key.slice(0, 64)}": this server honours ${[...FIELDS].join(', ')}`);
  }
  const model = body.model;
  if (model !== undefined && model !== null && typeof model !== 'string') throw fieldError('model', `model must be a string, got ${describe(model)}`);
  const format = body.encoding_format ?? 'float';
  if (format !== 'float' && format !== 'base64') throw fieldError('encoding_format', `encoding_format must be "float" or "base64", got ${describe(format)}`);
  return { model: typeof model === 'string' ? model : undefined, inputs: inputsOf(body.input), encoding: format };
}
