/**
 * A generation request in domain form, validated once at the edge (CLI or gRPC), and the events
 * a request produces. Both the in-process generator and the coordinator speak these.
 */
import { InvalidArgumentError } from '../errors';
import type { ModelConfig } from '../model/config';
import type { SamplingParams } from '../sampling/sampler';
import type { TokenLogprobs } from '../sampling/logprobs';
import type { FinishReason } from '../sampling/stop';

export type Prompt = { readonly kind: 'text'; readonly text: string } | { readonly kind: 'ids'; readonly ids: readonly number[] };

export interface GenerationRequest {
  readonly prompt: Prompt;
  readonly maxTokens: number;
  readonly sampling: SamplingParams;
  readonly stop: readonly string[];
  readonly ignoreEos: boolean;
  /** Report the logits that chose the first token. */
  readonly returnFirstLogits: boolean;
  /** Report each token's log-probability and this many most likely alternatives; absent: none. */
  readonly logprobs?: number;
}

export const DEFAULT_MAX_TOKENS = 64;

/** Why a stream ended: the sampler's reasons, or `content_filter` when the safety filter blocked it. */
export type StreamFinishReason = FinishReason | 'content_filter';

export type GenerationEvent =
  | {
      readonly type: 'token';
      readonly index: number;
      readonly tokenId: number;
      readonly text: string;
      readonly firstLogits?: Float32Array;
      /** Set when the request asked for logprobs. */
      readonly logprobs?: TokenLogprobs;
      /** The safety filter redacted or blocked text of this token: clients get HIDDEN_TOKEN_ID, not tokenId. */
      readonly filtered?: boolean;
    }
  | {
      readonly type: 'finish';
      readonly reason: StreamFinishReason;
      /** Text released at the end (withheld while it could have begun a stop string). */
      readonly text: string;
      readonly promptTokens: number;
      readonly generatedTokens: number;
      readonly timeToFirstTokenMs: number;
      readonly totalMs: number;
      readonly resumes: number;
    };

/** Checks token-level limits once the prompt is tokenized. */
export function validatePromptIds(ids: readonly number[], maxTokens: number, config: ModelConfig, maxContextTokens = config.maxPositionEmbeddings): void {
  if (ids.length === 0) throw new InvalidArgumentError('the prompt is empty');
  if (!Number.isSafeInteger(maxTokens) || maxTokens < 1) throw new InvalidArgumentError(`max_tokens must be at least 1, got ${maxTokens}`);
  for (const id of ids) {
    if (!Number.isInteger(id) || id < 0 || id >= config.vocabSize) {
      throw new InvalidArgumentError(`prompt token id ${id} is outside the vocabulary [0, ${config.vocabSize})`);
    }
  }
  if (ids.length + maxTokens > maxContextTokens) {
    throw new InvalidArgumentError(`prompt (${ids.length} tokens) + max_tokens (${maxTokens}) exceeds the context limit of ${maxContextTokens} tokens`);
  }
}
