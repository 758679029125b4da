/**
 * Picks the next token from a logits vector (vocab,).
 *
 * Greedy: the highest logit, the lowest token id among equals.
 * Random: logits / temperature -> top-k -> top-p (nucleus over the sorted, renormalised
 * distribution) -> softmax in float64 -> one draw with the uniform number uniformAt(seed, step).
 *
 * Determinism contract (failover replays sequences on other nodes): the token is a pure function
 * of (logits, params, step). Nothing is carried between calls, the float64 arithmetic runs in a
 * fixed order, filters keep tokens by a strict total order (candidates.ts), and the draw walks the
 * kept tokens in increasing id, so identical logits give the identical token on every node.
 */
import { InternalError, InvalidArgumentError } from '../errors';
import { uniformAt } from './counter-random';
import { keepNucleus, keepTopK, type Kept } from './filters';

export type SamplingParams =
  | { readonly kind: 'greedy' }
  | {
      readonly kind: 'random';
      /** > 0; divides the logits. */
      readonly temperature: number;
      /** Keep only the k most likely tokens; 0 = off. */
      readonly topK: number;
      /** Keep the smallest set of most likely tokens holding this much probability; 1 = off. */
      readonly topP: number;
      /** An unsigned 64-bit integer. */
      readonly seed: bigint | number;
    };

type RandomParams = Extract<SamplingParams, { kind: 'random' }>;

const RANDOM_KEYS = new Set(['kind', 'temperature', 'topK', 'topP', 'seed']);
const MAX_SEED = (1n << 64n) - 1n;

/** The seed as a bigint in [0, 2^64); InvalidArgumentError otherwise. */
function seedToUint64(seed: unknown): bigint {
  let value: bigint | undefined;
  if (typeof seed === 'bigint') value = seed;
  else if (typeof seed === 'number' && Number.isSafeInteger(seed)) value = BigInt(seed);
  else if (typeof seed === 'string' && /^[0-9]{1,20}$/.test(seed)) value = BigInt(seed); // JSON cannot carry 64-bit numbers
  if (value === undefined || value < 0n || value > MAX_SEED) {
    throw new InvalidArgumentError(`sampling seed must be an integer in [0, 2^64), got ${String(seed)}`);
  }
  return value;
}

function checkRandomParams(p: { temperature: unknown; topK: unknown; topP: unknown }): void {
  if (typeof p.temperature !== 'number' || !Number.isFinite(p.temperature) || p.temperature <= 0) {
    throw new InvalidArgumentError(`temperature must be a finite number > 0, got ${String(p.temperature)}`);
  }
  if (typeof p.topK !== 'number' || !Number.isSafeInteger(p.topK) || p.topK < 0) {
    throw new InvalidArgumentError(`topK must be an integer >= 0 (0 = off), got ${String(p.topK)}`);
  }
  if (typeof p.topP !== 'number' || !(p.topP > 0 && p.topP <= 1)) {
    throw new InvalidArgumentError(`topP must be in (0, 1] (1 = off), got ${String(p.topP)}`);
  }
}

/**
 * Validates request parameters into a frozen SamplingParams. Accepts `{ kind: 'greedy' }` or
 * `{ kind: 'random', seed, temperature?: 1, topK?: 0, topP?: 1 }`, the seed as a bigint, a safe
 * integer or a decimal string; the result carries it as a bigint. Unknown keys are an error.
 */
export function parseSamplingParams(raw: unknown): SamplingParams {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new InvalidArgumentError('sampling parameters must be an object');
  }
  const fields = raw as Record<string, unknown>;
  const allowed = fields.kind === 'greedy' ? new Set(['kind']) : RANDOM_KEYS;
  if (fields.kind !== 'greedy' && fields.kind !== 'random') {
    throw new InvalidArgumentError(`sampling kind must be "greedy" or "random", got ${JSON.stringify(fields.kind)}`);
  }
  const unknown = Object.keys(fields).filter((key) => !allowed.has(key));
  if (unknown.length > 0) {
    throw new InvalidArgumentError(`unknown ${fields.kind} sampling parameter(s): ${unknown.join(', ')}`);
  }
  if (fields.kind === 'greedy') return Object.freeze({ kind: 'greedy' });
  if (fields.seed === undefined) {
    throw new InvalidArgumentError('random sampling needs a seed, so that a resumed sequence draws the same tokens');
  }
  const params = { temperature: fields.temperature ?? 1, topK: fields.topK ?? 0, topP: fields.topP ?? 1 };
  checkRandomParams(params);
  return Object.freeze({ kind: 'random', ...(params as Omit<RandomParams, 'kind' | 'seed'>), seed: seedToUint64(fields.seed) });
}

/** The highest logit's index, the lowest index among equals; rejects NaN, +Infinity, and no finite logit. */
export function argmax(logits: Float32Array): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) {
    const v = logits[i];
    if (v > logits[best]) best = i;
    else if (Number.isNaN(v)) throw new InternalError(`logit ${i} is NaN`);
  }
  const max = logits[best];
  if (!Number.isFinite(max)) throw new InternalError(`logits have no finite maximum (logit ${best} is ${max})`);
  return best;
}

/**
 * Draws one kept token with probability proportional to its weight. The walk is in increasing
 * token id, whatever filter kept the tokens, so `u` selects the same token on every node.
 */
function draw({ ids, weights }: Kept, u: number): number {
  let mass = 0;
  for (let j = 0; j < weights.length; j++) mass += weights[j];
  const r = u * mass;
  let cumulative = 0;
  let last = ids[0]; // the last token with weight > 0, should u * mass have rounded up to mass
  for (let j = 0; j < ids.length; j++) {
    if (weights[j] === 0) continue;
    cumulative += weights[j];
    last = ids[j];
    if (r < cumulative) break;
  }
  return last;
}

function sampleRandom(logits: Float32Array, p: RandomParams, u: number): number {
  const max = logits[argmax(logits)];
  const invTemperature = 1 / p.temperature;
  const topKOn = p.topK > 0 && p.topK < logits.length;
  const kept = topKOn
    ? keepTopK(logits, p.topK, p.topP, max, invTemperature)
    : keepNucleus(logits, p.topP, max, invTemperature);
  return draw(kept, u);
}

/**
 * The token for generation step `step` (0-based count of tokens generated so far in this
 * sequence) from `logits` (vocab,).
 */
export function sampleToken(logits: Float32Array, params: SamplingParams, step: number): number {
  if (logits.length === 0) throw new InternalError('cannot sample from an empty logits vector');
  if (!Number.isSafeInteger(step) || step < 0) {
    throw new InvalidArgumentError(`sampling step must be an integer >= 0, got ${step}`);
  }
  if (params.kind === 'greedy') return argmax(logits);
  checkRandomParams(params);
  return sampleRandom(logits, params, uniformAt(seedToUint64(params.seed), step));
}
