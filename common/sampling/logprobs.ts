/**
 * Log-probabilities of a generated token and of the most likely alternatives, from the raw logits
 * that chose it (before temperature or top-p: what the model itself assigns, as OpenAI's and
 * vLLM's `logprobs` report). log_softmax in float64: logit - max - log(sum(exp(logit - max))).
 *
 * One pass for the maximum, one for the sum, and a bounded insertion list for the top `top`
 * alternatives: O(vocab x top), about 0.1 ms for a 32k vocabulary and top 5.
 */
import { InvalidArgumentError } from '../errors';

/** The most alternatives a request may ask for (OpenAI's top_logprobs limit). */
export const MAX_TOP_LOGPROBS = 20;

export interface TokenLogprob {
  readonly tokenId: number;
  readonly logprob: number;
}

export interface TokenLogprobs {
  /** The generated token's own log-probability. */
  readonly logprob: number;
  /** The `top` most likely tokens, most likely first (the lower id first among equals). */
  readonly top: readonly TokenLogprob[];
}

export function tokenLogprobs(logits: Float32Array, tokenId: number, top: number): TokenLogprobs {
  if (!Number.isSafeInteger(top) || top < 0 || top > MAX_TOP_LOGPROBS) throw new InvalidArgumentError(`top logprobs must be an integer in [0, ${MAX_TOP_LOGPROBS}], got ${top}`);
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  const logZ = max + Math.log(sum);
  // Best first; an insertion keeps the list sorted, ids ascending among equal logits.
  const ids: number[] = [];
  for (let i = 0; i < logits.length && top > 0; i++) {
    const v = logits[i];
    if (ids.length === top && !(v > logits[ids[top - 1]])) continue;
    let at = ids.length;
    while (at > 0 && v > logits[ids[at - 1]]) at--;
    ids.splice(at, 0, i);
    if (ids.length > top) ids.pop();
  }
  return { logprob: logits[tokenId] - logZ, top: ids.map((id) => ({ tokenId: id, logprob: logits[id] - logZ })) };
}
