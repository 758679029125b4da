/**
 * The client API's messages to and from domain form: GenerateRequest <-> GenerationRequest and
 * GenerateEvent <-> GenerationEvent. Validation of what a client sent happens here, once.
 */
import { InvalidArgumentError } from '../errors';
import { DEFAULT_MAX_TOKENS, type GenerationEvent, type GenerationRequest, type Prompt, type StreamFinishReason } from '../generation/request';
import { HIDDEN_TOKEN_ID } from '../generation/text-filter';
import { parseSamplingParams, type SamplingParams } from '../sampling/sampler';
import { checkUint32, checkUint64Exact } from './field-ranges';
import type { GenerateEvent, GenerateRequest, WireFinishReason, WireSamplingParams } from './messages';

/** Checked here, on the sending side: the encoder would wrap or round an out-of-range value. */
function samplingToWire(s: SamplingParams): WireSamplingParams {
  if (s.kind === 'greedy') return { greedy: true, temperature: 0, topK: 0, topP: 1, seed: 0 };
  return { greedy: false, temperature: s.temperature, topK: checkUint32(s.topK, 'top_k'), topP: s.topP, seed: checkUint64Exact(s.seed, 'seed') };
}

/** `top_p` is `optional`: unset means 1 (off), an explicit 0 is refused by parseSamplingParams. */
function samplingFromWire(w: WireSamplingParams | null | undefined): SamplingParams {
  if (w === null || w === undefined || w.greedy) return { kind: 'greedy' };
  const topP = w.topP ?? 1;
  return parseSamplingParams({ kind: 'random', temperature: w.temperature, topK: checkUint32(w.topK, 'top_k'), topP, seed: checkUint64Exact(w.seed, 'seed') });
}

/**
 * `max_tokens` as received: unset (it is `optional`) means DEFAULT_MAX_TOKENS; an explicit 0 is
 * refused, never silently replaced by the default.
 */
export function maxTokensFromWire(maxTokens: number | null | undefined): number {
  if (maxTokens === undefined || maxTokens === null) return DEFAULT_MAX_TOKENS;
  return checkUint32(maxTokens, 'max_tokens (leave it unset for the default of 64)', 1);
}

export function requestToWire(r: GenerationRequest, model = ''): GenerateRequest {
  if (r.prompt.kind === 'ids') r.prompt.ids.forEach((id, i) => checkUint32(id, `prompt token id #${i}`));
  const prompt = r.prompt.kind === 'text' ? { text: r.prompt.text, prompt: 'text' as const } : { tokenIds: { ids: [...r.prompt.ids] }, prompt: 'tokenIds' as const };
  return {
    model,
    ...prompt,
    maxTokens: checkUint32(r.maxTokens, 'max_tokens', 1),
    sampling: samplingToWire(r.sampling),
    stop: [...r.stop],
    ignoreEos: r.ignoreEos,
    returnFirstLogits: r.returnFirstLogits,
  };
}

/** A GenerateRequest as received; prompt handles are resolved by the caller through `handles`. */
export function requestFromWire(w: GenerateRequest, handles: (handle: string) => readonly number[] | undefined): GenerationRequest {
  let prompt: Prompt;
  switch (w.prompt) {
    case 'text':
      prompt = { kind: 'text', text: w.text ?? '' };
      break;
    case 'tokenIds':
      prompt = { kind: 'ids', ids: w.tokenIds?.ids ?? [] };
      break;
    case 'promptHandle': {
      const ids = handles(w.promptHandle ?? '');
      if (ids === undefined) throw new InvalidArgumentError(`unknown or expired prompt_handle "${w.promptHandle}"`);
      prompt = { kind: 'ids', ids };
      break;
    }
    default:
      throw new InvalidArgumentError('the request has no prompt (set text, token_ids or prompt_handle)');
  }
  if (w.stop.some((s) => s === '')) throw new InvalidArgumentError('stop strings must not be empty');
  return {
    prompt,
    maxTokens: maxTokensFromWire(w.maxTokens),
    sampling: samplingFromWire(w.sampling),
    stop: w.stop,
    ignoreEos: w.ignoreEos,
    returnFirstLogits: w.returnFirstLogits,
  };
}

const REASON_TO_WIRE: Record<StreamFinishReason, WireFinishReason> = {
  eos: 'FINISH_REASON_EOS',
  length: 'FINISH_REASON_LENGTH',
  stop: 'FINISH_REASON_STOP',
  content_filter: 'FINISH_REASON_CONTENT_FILTER',
};

export function eventToWire(e: GenerationEvent): GenerateEvent {
  if (e.type === 'token') {
    const logits = e.firstLogits === undefined ? Buffer.alloc(0) : Buffer.from(e.firstLogits.buffer, e.firstLogits.byteOffset, e.firstLogits.byteLength);
    // A token whose text the safety filter redacted or blocked: its id would give the text away.
    return { token: { index: e.index, tokenId: e.filtered === true ? HIDDEN_TOKEN_ID : e.tokenId, text: e.text, firstLogits: logits } };
  }
  return {
    finish: {
      reason: REASON_TO_WIRE[e.reason],
      text: e.text,
      promptTokens: e.promptTokens,
      generatedTokens: e.generatedTokens,
      timeToFirstTokenMs: e.timeToFirstTokenMs,
      totalMs: e.totalMs,
      resumes: e.resumes,
    },
  };
}

export function eventFromWire(w: GenerateEvent): GenerationEvent {
  if (w.token !== null && w.token !== undefined) {
    const t = w.token;
    const firstLogits = t.firstLogits.byteLength === 0 ? undefined : new Float32Array(new Uint8Array(t.firstLogits).buffer);
    return { type: 'token', index: t.index, tokenId: t.tokenId, text: t.text, firstLogits };
  }
  const f = w.finish!;
  const reason = (Object.keys(REASON_TO_WIRE) as StreamFinishReason[]).find((k) => REASON_TO_WIRE[k] === f.reason) ?? 'length';
  return {
    type: 'finish',
    reason,
    text: f.text,
    promptTokens: f.promptTokens,
    generatedTokens: f.generatedTokens,
    timeToFirstTokenMs: f.timeToFirstTokenMs,
    totalMs: f.totalMs,
    resumes: f.resumes,
  };
}
