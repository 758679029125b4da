/**
 * The model hyper-parameters Bora needs, parsed once from a hub-format config.json into a frozen,
 * typed object. Anything missing, mistyped or unsupported is a CheckpointError naming the file.
 */
import { CheckpointError } from '../errors';

export type ModelType = 'mistral' | 'mixtral';

export interface ModelConfig {
  readonly modelType: ModelType;
  readonly vocabSize: number;
  readonly hiddenSize: number;
  /** Dense MLP width (Mistral) or one expert's width (Mixtral). */
  readonly intermediateSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  /** Per-head width; may differ from hiddenSize / numHeads when config.json sets it. */
  readonly headDim: number;
  readonly rmsNormEps: number;
  readonly ropeTheta: number;
  /** Tokens a query may attend to, itself included; null means unlimited. */
  readonly slidingWindow: number | null;
  readonly maxPositionEmbeddings: number;
  /** Mixtral only; 0 for a dense model. */
  readonly numExperts: number;
  /** Mixtral only; 0 for a dense model. */
  readonly expertsPerToken: number;
  readonly bosTokenId: number;
  readonly eosTokenId: number;
  readonly tieWordEmbeddings: boolean;
}

type Json = Record<string, unknown>;

/**
 * The largest size config.json may give any dimension: far above any real model, and small
 * enough that products of two sizes stay exact (1e300 is an integer to Number.isInteger, and a
 * tensor sized from it would be an allocation no one can make).
 */
export const MAX_CONFIG_SIZE = 2 ** 31 - 1;

function positiveInt(raw: Json, key: string, file: string, fallback?: number): number {
  const value = raw[key] ?? fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0 || value > MAX_CONFIG_SIZE) {
    throw new CheckpointError(file, `"${key}" must be a positive integer, got ${JSON.stringify(raw[key])}${typeof value === 'number' && value > MAX_CONFIG_SIZE ? ` (at most ${MAX_CONFIG_SIZE})` : ''}`);
  }
  return value;
}

/** A special token id: an integer inside the vocabulary. */
function tokenId(id: number, key: string, vocabSize: number, file: string): number {
  if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
    throw new CheckpointError(file, `"${key}" ${id} is not a token id of the vocabulary [0, ${vocabSize})`);
  }
  return id;
}

function positiveNumber(raw: Json, key: string, file: string, fallback: number): number {
  const value = raw[key] ?? fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new CheckpointError(file, `"${key}" must be a positive number, got ${JSON.stringify(raw[key])}`);
  }
  return value;
}

function firstId(value: unknown, fallback: number): number {
  if (Array.isArray(value)) return typeof value[0] === 'number' ? value[0] : fallback;
  return typeof value === 'number' ? value : fallback;
}

/** Parses config.json text. `file` is used in error messages only. */
export function parseModelConfig(text: string, file: string): ModelConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new CheckpointError(file, `not valid JSON (${(err as Error).message})`, { cause: err });
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new CheckpointError(file, 'must hold a JSON object');
  }
  const json = raw as Json;
  const modelType = json.model_type;
  if (modelType !== 'mistral' && modelType !== 'mixtral') {
    throw new CheckpointError(
      file,
      `unsupported model_type ${JSON.stringify(modelType)}: Bora runs "mistral" and "mixtral"`,
    );
  }
  if (json.hidden_act !== undefined && json.hidden_act !== 'silu') {
    throw new CheckpointError(file, `unsupported hidden_act ${JSON.stringify(json.hidden_act)}: only "silu"`);
  }
  const hiddenSize = positiveInt(json, 'hidden_size', file);
  const numHeads = positiveInt(json, 'num_attention_heads', file);
  const numKvHeads = positiveInt(json, 'num_key_value_heads', file, numHeads);
  if (numHeads % numKvHeads !== 0) {
    throw new CheckpointError(file, `num_attention_heads ${numHeads} is not a multiple of num_key_value_heads ${numKvHeads}`);
  }
  const headDim = json.head_dim == null ? hiddenSize / numHeads : positiveInt(json, 'head_dim', file);
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) {
    throw new CheckpointError(file, `head_dim ${headDim} must be an even integer (rotary embeddings pair its halves)`);
  }
  // transformers' defaults where the key is absent: MistralConfig has a 4096 window and theta
  // 1e4, MixtralConfig no window and theta 1e6. An explicit null means no window.
  const isMoe = modelType === 'mixtral';
  const slidingWindow =
    json.sliding_window === undefined ? (isMoe ? null : 4096) : json.sliding_window === null ? null : positiveInt(json, 'sliding_window', file);
  const numExperts = isMoe ? positiveInt(json, 'num_local_experts', file) : 0;
  const expertsPerToken = isMoe ? positiveInt(json, 'num_experts_per_tok', file) : 0;
  if (expertsPerToken > numExperts) {
    throw new CheckpointError(file, `num_experts_per_tok ${expertsPerToken} exceeds num_local_experts ${numExperts}`);
  }
  const vocabSize = positiveInt(json, 'vocab_size', file);
  return Object.freeze({
    modelType,
    vocabSize,
    hiddenSize,
    intermediateSize: positiveInt(json, 'intermediate_size', file),
    numLayers: positiveInt(json, 'num_hidden_layers', file),
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: positiveNumber(json, 'rms_norm_eps', file, 1e-5),
    ropeTheta: positiveNumber(json, 'rope_theta', file, isMoe ? 1e6 : 10000),
    slidingWindow,
    maxPositionEmbeddings: positiveInt(json, 'max_position_embeddings', file, 32768),
    numExperts,
    expertsPerToken,
    bosTokenId: tokenId(firstId(json.bos_token_id, 1), 'bos_token_id', vocabSize, file),
    eosTokenId: tokenId(firstId(json.eos_token_id, 2), 'eos_token_id', vocabSize, file),
    tieWordEmbeddings: json.tie_word_embeddings === true,
  });
}
