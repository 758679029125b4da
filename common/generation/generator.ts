/**
 * Requests in, events out: tokenizes and validates a request, submits it to the scheduler with a
 * TextSink, and hands back a handle to cancel it. The in-process CLI and the coordinator both
 * generate through this class; only the scheduler's pipeline differs.
 */
import { randomUUID } from 'node:crypto';
import { BoraError, asBoraError } from '../errors';
import { sequenceId } from '../ids';
import type { ModelConfig } from '../model/config';
import type { Tokenizer } from '../tokenizer/tokenizer';
import { DEFAULT_MAX_PROMPT_BYTES, checkPromptBytes } from './prompt-limits';
import { validatePromptIds, type GenerationEvent, type GenerationRequest, type Prompt } from './request';
import type { Scheduler } from './scheduler';
import type { TextFilter } from './text-filter';
import { TextSink } from './text-sink';

export interface GeneratorOptions {
  /** Tokenizes a text prompt; defaults to the tokenizer in this thread. */
  readonly encode?: (text: string) => Promise<number[]> | number[];
  /** Context limit for prompt + generated tokens; defaults to the model's. */
  readonly maxContextTokens?: number;
  /** UTF-8 bytes of prompt text accepted, checked before tokenizing; DEFAULT_MAX_PROMPT_BYTES. */
  readonly maxPromptBytes?: number;
}

export interface GenerationHandle {
  /** Resolves after the finish event, rejects with the error that ended the request. */
  readonly done: Promise<void>;
  cancel(): void;
}

export class Generator {
  constructor(
    private readonly scheduler: Scheduler,
    private readonly tokenizer: Tokenizer,
    private readonly config: ModelConfig,
    private readonly options: GeneratorOptions = {},
  ) {}

  async promptIds(prompt: Prompt): Promise<number[]> {
    if (prompt.kind === 'ids') return [...prompt.ids];
    if (prompt.text === '') return [];
    checkPromptBytes(prompt.text, this.options.maxPromptBytes ?? DEFAULT_MAX_PROMPT_BYTES);
    return this.options.encode !== undefined ? this.options.encode(prompt.text) : this.tokenizer.encode(prompt.text, { addBos: true });
  }

  /**
   * Starts a request; events arrive through onEvent until the finish event or an error. An
   * `outputFilter` sees the generated text before the events carry it (the safety filter).
   */
  start(request: GenerationRequest, onEvent: (event: GenerationEvent) => void, outputFilter?: TextFilter): GenerationHandle {
    let cancel: () => void = () => undefined;
    let cancelled = false;
    const done = (async () => {
      const ids = await this.promptIds(request.prompt);
      validatePromptIds(ids, request.maxTokens, this.config, this.options.maxContextTokens);
      if (cancelled) return;
      await new Promise<void>((resolve, reject) => {
        const sink = new TextSink(this.tokenizer, request, ids.length, {
          onEvent: (event) => {
            onEvent(event);
            if (event.type === 'finish') resolve();
          },
          onError: reject,
        }, outputFilter);
        const handle = this.scheduler.submit({ id: sequenceId(randomUUID()), promptIds: ids, sampling: request.sampling, sink });
        cancel = () => {
          handle.cancel();
          sink.onError(new BoraError('CANCELLED', 'the request was cancelled'));
        };
      });
    })().catch((err: unknown) => {
      throw asBoraError(err);
    });
    return {
      done,
      cancel: () => {
        cancelled = true;
        cancel();
      },
    };
  }
}
