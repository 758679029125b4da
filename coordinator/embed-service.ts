/**
 * The Embed RPC (inference.proto): the caller passes the ClientGate like a Generate caller (an API
 * key with the client or admin role, then admission: one stream for the call, its input tokens
 * charged to the key's token budget), the inputs go to the Embedder, and every failure leaves as
 * a gRPC status. A client that cancels stops its inputs.
 */
import { BoraError, InvalidArgumentError, asBoraError } from '../common/errors';
import { toServiceError } from '../common/wire/grpc-status';
import type { EmbedInput } from '../common/wire/messages';
import type { InferenceHandlers } from '../common/wire/proto';
import type { ClientGate } from './client-gate';
import { outcomeOf, type RequestOutcome } from './coordinator-metrics';
import type { ModelRef } from '../common/models/model-ref';
import { modelVersionMetadata, routeModel } from './model-routing';
import type { Embedder, EmbeddingInput } from './embeddings';

export interface EmbedServiceDeps {
  /** Undefined while this coordinator cannot embed (no model loaded). */
  readonly embedder: () => Embedder | undefined;
  readonly gate: ClientGate;
  /** The model id the coordinator serves ('' accepts any request's empty model field). */
  readonly modelId: string;
  /** The registered version served (model-routing.ts): a request may name it as NAME or NAME@VERSION. */
  readonly modelVersion?: ModelRef;
  /** Throws UNAVAILABLE when this coordinator may not serve (a standby). */
  readonly checkServing?: () => void;
  readonly onOutcome?: (outcome: RequestOutcome, err?: BoraError) => void;
}

export function inputFromWire(input: EmbedInput, index: number): EmbeddingInput {
  if (input.input === 'text') return { kind: 'text', text: input.text ?? '' };
  if (input.input === 'tokenIds') return { kind: 'ids', ids: input.tokenIds?.ids ?? [] };
  throw new InvalidArgumentError(`input ${index} sets neither text nor token_ids`);
}

export function embedHandler(deps: EmbedServiceDeps): InferenceHandlers['Embed'] {
  return (call, callback) => {
    const controller = new AbortController();
    call.on('cancelled', () => controller.abort());
    (async () => {
      const who = deps.gate.principal(call, 'Embed');
      const version = routeModel(call.request.model, { modelId: deps.modelId, version: deps.modelVersion });
      if (version !== undefined) call.sendMetadata(modelVersionMetadata(version));
      const inputs = call.request.inputs.map(inputFromWire);
      deps.checkServing?.();
      const embedder = deps.embedder();
      if (embedder === undefined) throw new BoraError('UNAVAILABLE', 'this coordinator cannot compute embeddings right now');
      const ticket = await deps.gate.admit(who, call, 'Embed', controller.signal);
      try {
        const result = await embedder.embed(inputs, controller.signal);
        ticket?.recordTokens(result.tokens.reduce((n, t) => n + t, 0));
        return result;
      } finally {
        ticket?.release();
      }
    })().then(
      (result) => {
        deps.onOutcome?.('ok');
        callback(null, {
          embeddings: result.vectors.map((v, i) => ({ values: Array.from(v), promptTokens: result.tokens[i] })),
          promptTokens: result.tokens.reduce((n, t) => n + t, 0),
        });
      },
      (err: unknown) => {
        const bora = asBoraError(err);
        deps.onOutcome?.(outcomeOf(bora), bora);
        callback(toServiceError(bora));
      },
    );
  };
}

