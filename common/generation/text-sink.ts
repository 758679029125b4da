/**
 * Turns one sequence's tokens into the events a client sees: streamed text that never splits a
 * character, stop strings and EOS honoured, and a final event with timings. It is the
 * scheduler's SequenceSink for a text request.
 */
import type { BoraError } from '../errors';
import { tokenLogprobs } from '../sampling/logprobs';
import { StopCondition } from '../sampling/stop';
import { StreamDecoder } from '../tokenizer/stream-decoder';
import type { Tokenizer } from '../tokenizer/tokenizer';
import type { SequenceSink } from './scheduler';
import type { GenerationEvent, GenerationRequest } from './request';
import { FilteredTokens } from './filtered-tokens';
import type { TextFilter } from './text-filter';

export interface TextSinkCallbacks {
  onEvent(event: GenerationEvent): void;
  onError(err: BoraError): void;
}

export class TextSink implements SequenceSink {
  private readonly decoder: StreamDecoder;
  private readonly stop: StopCondition;
  private readonly startedMs = performance.now();
  private firstTokenMs: number | undefined;
  private resumes = 0;
  private ended = false;
  /** With a safety filter: token events wait for it to settle their text. */
  private readonly filtered: FilteredTokens | undefined;

  constructor(
    tokenizer: Tokenizer,
    private readonly request: GenerationRequest,
    private readonly promptTokens: number,
    private readonly callbacks: TextSinkCallbacks,
    /** Checks the text as it streams (the safety filter); it may hold text back or end the sequence. */
    filter?: TextFilter,
  ) {
    this.decoder = new StreamDecoder(tokenizer);
    this.filtered = filter === undefined ? undefined : new FilteredTokens(filter, (e) => this.callbacks.onEvent(e));
    // With ignore_eos no generated id can equal the EOS id given here (it is past the vocabulary).
    // Otherwise the model's other end ids (generation_config.json, the chat template's end of
    // turn) end the sequence as EOS does.
    const eosId = request.ignoreEos ? tokenizer.vocabSize + 1 : tokenizer.eosId;
    const moreEosIds = request.ignoreEos ? [] : tokenizer.stopIds;
    this.stop = new StopCondition({ eosId, moreEosIds, maxTokens: request.maxTokens, stopStrings: request.stop });
  }

  onToken(token: number, index: number, logits: Float32Array): boolean {
    if (this.ended) return true;
    this.firstTokenMs ??= performance.now();
    const step = this.stop.push(token, this.decoder.push(token));
    const firstLogits = index === 0 && this.request.returnFirstLogits ? logits.slice() : undefined;
    const logprobs = this.request.logprobs === undefined ? undefined : tokenLogprobs(logits, token, this.request.logprobs);
    const event = { type: 'token' as const, index, tokenId: token, text: step.emit, firstLogits, ...(logprobs === undefined ? {} : { logprobs }) };
    let blocked = false;
    if (this.filtered === undefined) this.callbacks.onEvent(event);
    else blocked = this.filtered.token(event);
    if (step.finish === undefined && !blocked) return false;
    this.ended = true;
    // At a stop string or EOS, text still inside the decoder is past the cut: it is not shown.
    let tail = step.finish === 'length' && !blocked ? this.decoder.flush() : '';
    if (this.filtered !== undefined && !blocked) ({ text: tail, blocked } = this.filtered.end(tail));
    const now = performance.now();
    this.callbacks.onEvent({
      type: 'finish',
      reason: blocked ? 'content_filter' : step.finish!,
      text: tail,
      promptTokens: this.promptTokens,
      generatedTokens: this.stop.tokenCount,
      timeToFirstTokenMs: (this.firstTokenMs ?? now) - this.startedMs,
      totalMs: now - this.startedMs,
      resumes: this.resumes,
    });
    return true;
  }

  onError(err: BoraError): void {
    if (this.ended) return;
    this.ended = true;
    this.callbacks.onError(err);
  }

  onResume(): void {
    this.resumes++;
  }
}
