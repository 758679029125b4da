/**
 * The coordinator's embeddings: texts or token ids in, one float32 vector per input out (the
 * mean-pooled, L2-normalised final-normed hidden state; common/engine/pooling.ts). Inputs go
 * through the scheduler like prompts, batched with other embeddings and chunked like prefill, and
 * are replayed like any sequence when the pipeline breaks. The gRPC Embed handler
 * (embed-service.ts) and the HTTP API's /v1/embeddings both call embed().
 */
import { randomUUID } from 'node:crypto';
import { BoraError, InvalidArgumentError, asBoraError } from '../common/errors';
import { checkPromptBytes } from '../common/generation/prompt-limits';
import type { Scheduler } from '../common/generation/scheduler';
import { sequenceId } from '../common/ids';
import type { ModelConfig } from '../common/model/config';

/** One input: text (tokenized with BOS, like a Generate prompt) or token ids as given. */
export type EmbeddingInput = { readonly kind: 'text'; readonly text: string } | { readonly kind: 'ids'; readonly ids: readonly number[] };

/** The most inputs one call may carry. */
export const MAX_EMBEDDING_INPUTS = 256;

export interface EmbeddingResult {
  readonly vectors: Float32Array[];
  /** Tokens of each input. */
  readonly tokens: number[];
}

export interface EmbedderOptions {
  readonly scheduler: Pick<Scheduler, 'submitEmbedding'>;
  readonly config: ModelConfig;
  /** Tokenizes text off the event loop. */
  readonly encode: (text: string, options: { addBos: boolean }) => Promise<number[]>;
  /** UTF-8 bytes of text accepted per input, checked before tokenizing. */
  readonly maxPromptBytes: number;
  /** Seconds from the call to its last vector (the embedding-latency histogram). */
  readonly onLatency?: (seconds: number) => void;
}

export class Embedder {
  constructor(private readonly options: EmbedderOptions) {}

  /**
   * Embeds every input; rejects with INVALID_ARGUMENT for a bad input (nothing runs then), or
   * with the error that stopped the pipeline. `signal` cancels the inputs still running.
   */
  async embed(inputs: readonly EmbeddingInput[], signal?: AbortSignal): Promise<EmbeddingResult> {
    const started = performance.now();
    if (inputs.length === 0) throw new InvalidArgumentError('embeddings need at least one input');
    if (inputs.length > MAX_EMBEDDING_INPUTS) throw new InvalidArgumentError(`embeddings take at most ${MAX_EMBEDDING_INPUTS} inputs per call, got ${inputs.length}`);
    const ids: number[][] = [];
    for (const [i, input] of inputs.entries()) ids.push(this.checkIds(i, await this.tokens(i, input)));
    const handles: { cancel(): void }[] = [];
    const onAbort = (): void => handles.forEach((h) => h.cancel());
    signal?.addEventListener('abort', onAbort);
    try {
      const vectors = await Promise.all(
        ids.map(
          (promptIds) =>
            new Promise<Float32Array>((resolve, reject) => {
              if (signal?.aborted === true) {
                reject(new BoraError('CANCELLED', 'the embedding request was cancelled'));
                return;
              }
              handles.push(
                this.options.scheduler.submitEmbedding({
                  id: sequenceId(`emb-${randomUUID()}`),
                  promptIds,
                  onEmbedding: resolve,
                  onError: reject,
                }),
              );
            }),
        ),
      );
      this.options.onLatency?.((performance.now() - started) / 1000);
      return { vectors, tokens: ids.map((x) => x.length) };
    } catch (err) {
      onAbort(); // the other inputs of a failed call stop too
      throw asBoraError(err);
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  private async tokens(index: number, input: EmbeddingInput): Promise<number[]> {
    if (input.kind === 'ids') return [...input.ids];
    checkPromptBytes(input.text, this.options.maxPromptBytes, `input ${index}`);
    return this.options.encode(input.text, { addBos: true });
  }

  private checkIds(index: number, ids: number[]): number[] {
    const c = this.options.config;
    if (ids.length === 0) throw new InvalidArgumentError(`input ${index} is empty`);
    if (ids.length > c.maxPositionEmbeddings) throw new InvalidArgumentError(`input ${index} has ${ids.length} tokens, over the model's context of ${c.maxPositionEmbeddings}`);
    const bad = ids.find((t) => !Number.isInteger(t) || t < 0 || t >= c.vocabSize);
    if (bad !== undefined) throw new InvalidArgumentError(`input ${index}: token id ${bad} is outside the vocabulary [0, ${c.vocabSize})`);
    return ids;
  }
}
