/**
 * POST /v1/embeddings: one request from JSON body to OpenAI's embeddings response.
 *
 *   parse the body (embedding-fields.ts) -> a plan must be serving (503) -> admission for the
 *   caller's key (429 with retry-after; the inputs' tokens are charged to its token budget) ->
 *   the coordinator's Embedder, the one gRPC Embed uses (inputs batched by the scheduler with
 *   other embeddings, the call's latency in bora_embedding_seconds) ->
 *   {"object": "list", "data": [{"object": "embedding", "index": i, "embedding": [...]}], ...}
 *
 * A vector is the float32 the Embedder computed: as JSON numbers (each float32 printed as the
 * shortest decimal that reads back to it) or as base64 of its little-endian bytes, so either
 * encoding gives the client exactly gRPC Embed's values. A client that disconnects cancels the
 * inputs still running.
 */
import type { ServerResponse } from 'node:http';
import { NotFoundError, UnavailableError, asBoraError } from '../../common/errors';
import type { ApiKeyPrincipal } from '../../common/security/api-keys';
import type { ClientCall } from '../client-gate';
import type { HttpApiDeps } from './http-deps';
import { type EmbeddingEncoding, parseEmbeddingsBody } from './embedding-fields';
import { fieldError } from './openai-error';

/** The gate method /v1/embeddings is admitted as (the roles and limits of gRPC Embed). */
export const EMBEDDINGS_METHOD = 'Embed';

/** A vector as the response carries it. */
function encodeVector(vector: Float32Array, encoding: EmbeddingEncoding): number[] | string {
  if (encoding === 'float') return Array.from(vector);
  const bytes = Buffer.alloc(vector.length * 4);
  vector.forEach((v, i) => bytes.writeFloatLE(v, i * 4));
  return bytes.toString('base64');
}

export async function serveEmbeddings(deps: HttpApiDeps, rawBody: unknown, who: ApiKeyPrincipal, call: ClientCall, res: ServerResponse): Promise<unknown> {
  const body = parseEmbeddingsBody(rawBody);
  if (body.model !== undefined && deps.modelId !== '' && body.model !== deps.modelId) {
    throw new NotFoundError(`unknown model "${body.model.slice(0, 200)}"; this server serves "${deps.modelId}"`);
  }
  const embedder = deps.embedder?.();
  if (embedder === undefined) throw new UnavailableError('this coordinator cannot compute embeddings right now');
  if (!deps.hasPipeline()) throw new UnavailableError('no plan is serving the model right now (workers are joining or recovering); retry later');
  deps.checkServing?.();

  const gone = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) gone.abort();
  });
  const ticket = await deps.gate.admit(who, call, EMBEDDINGS_METHOD, gone.signal);
  let result;
  try {
    result = await embedder.embed(body.inputs, gone.signal);
    ticket?.recordTokens(result.tokens.reduce((n, t) => n + t, 0));
  } catch (err) {
    const bora = asBoraError(err);
    // The Embedder names the input at fault ("input 2 has ... tokens"): the field is `input`.
    throw bora.code === 'INVALID_ARGUMENT' ? fieldError('input', bora.message) : bora;
  } finally {
    ticket?.release();
  }
  const promptTokens = result.tokens.reduce((n, t) => n + t, 0);
  return {
    object: 'list',
    data: result.vectors.map((v, index) => ({ object: 'embedding', index, embedding: encodeVector(v, body.encoding) })),
    model: deps.modelId,
    usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
  };
}
