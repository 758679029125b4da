/**
 * Synthesises a hub-format Mistral or Mixtral checkpoint with random weights, for benchmarks and
 * tests that need shapes the reference fixtures do not have. The tensors are exactly those of
 * stageTensorSpecs(config, 0, numLayers); matrices hold N(0, 0.02^2)-distributed values from a
 * seeded generator (the same seed gives byte-identical files), norm weights are 1.0.
 *
 * Speed: values come from a counter-based hash (two 16-bit draws per 32-bit hash) mapped through
 * a 65536-entry table of normal quantiles already encoded in the target dtype, so a bf16 element
 * costs half a hash and one table load. Tensors are produced in chunks while the previous chunk
 * is written, so memory stays at a few chunks whatever the model size.
 */
import { join } from 'node:path';
import { InvalidArgumentError } from '../errors';
import {
  STORAGE_DTYPE,
  TORCH_DTYPE,
  WEIGHT_DTYPES,
  isWeightDtype,
  writeCheckpoint,
  type TensorSource,
  type WeightDtype,
} from './checkpoint-writer';
import { CONFIG_FILE } from './checkpoint';
import { parseModelConfig, type ModelConfig, type ModelType } from './config';
import { f32ToBf16Bits, f32ToF16Bits } from './dtype';
import { elementCount } from './safetensors';
import { stageTensorSpecs, type TensorSpec } from './weights';

export interface MakeModelOptions {
  readonly arch: ModelType;
  readonly hiddenSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  /** Dense MLP width (Mistral) or one expert's width (Mixtral). */
  readonly intermediateSize: number;
  /** Mixtral only. */
  readonly numExperts?: number;
  /** Mixtral only. */
  readonly expertsPerToken?: number;
  /** Absent or null: unlimited attention. */
  readonly slidingWindow?: number | null;
  readonly vocabSize: number;
  readonly dtype: WeightDtype;
  /** Any safe integer; equal seeds give byte-identical weight files. */
  readonly seed: number;
  readonly outDir: string;
  /** Written to config.json only when given; otherwise hiddenSize / numHeads. */
  readonly headDim?: number;
  /** Absent: one model.safetensors. See WriteCheckpointOptions.maxShardBytes. */
  readonly maxShardBytes?: number;
  /** Defaults to 1e6, as Mistral v0.2+ and Mixtral use. */
  readonly ropeTheta?: number;
}

export interface MadeModel {
  readonly parameterCount: number;
  /** Tensor data bytes (parameterCount x bytes per element), headers excluded. */
  readonly bytes: number;
}

const WEIGHT_STD = 0.02;
const DEFAULT_ROPE_THETA = 1e6;
const MAX_POSITION_EMBEDDINGS = 32768;
/** Elements generated per chunk: 2 MiB of bf16, 4 MiB of f32. Even, so hash pairs never straddle chunks. */
const CHUNK_ELEMENTS = 1 << 20;
/** Weyl-sequence step (2^32 / golden ratio): consecutive counters land far apart before hashing. */
const COUNTER_STEP = 0x9e3779b9 | 0;

/** A bijective 32-bit mixer (MurmurHash3's finaliser): turns counters into uniform bits. */
function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

/** A 32-bit stream key from the seed and tensor name, so each tensor's values are independent. */
function tensorKey(seed: number, name: string): number {
  let h = mix32((seed >>> 0) ^ 0x5bd1e995);
  h = mix32(h ^ (Math.floor(seed / 2 ** 32) | 0));
  for (let i = 0; i < name.length; i++) h = mix32(h ^ name.charCodeAt(i));
  return h;
}

/**
 * The midpoints (k + 0.5) / count of `count` equal-probability bins of N(0, 1), found by
 * integrating the density with the trapezoid rule on a fine grid and inverting the result.
 */
function normalQuantiles(count: number): Float64Array {
  const lo = -8;
  const steps = 1 << 17;
  const h = 16 / steps;
  const density = (x: number): number => Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
  const cdf = new Float64Array(steps + 1); // cdf[i] = P(X < lo + i*h)
  for (let i = 1; i <= steps; i++) cdf[i] = cdf[i - 1] + (h * (density(lo + (i - 1) * h) + density(lo + i * h))) / 2;
  const total = cdf[steps];
  const out = new Float64Array(count);
  let i = 0;
  for (let k = 0; k < count; k++) {
    const p = ((k + 0.5) / count) * total;
    while (cdf[i + 1] < p) i++;
    out[k] = lo + (i + (p - cdf[i]) / (cdf[i + 1] - cdf[i])) * h;
  }
  return out;
}

interface SampleTables {
  /** bf16 / f16 bits of WEIGHT_STD * quantile[k], k a 16-bit draw. */
  readonly bf16: Uint16Array;
  readonly f16: Uint16Array;
  /** WEIGHT_STD * quantile[k], with one extra entry so f32 can interpolate within a bin. */
  readonly f32: Float32Array;
}

let tables: SampleTables | undefined;
function sampleTables(): SampleTables {
  if (tables !== undefined) return tables;
  const q = normalQuantiles(65536);
  const bf16 = new Uint16Array(65536);
  const f16 = new Uint16Array(65536);
  const f32 = new Float32Array(65537);
  for (let k = 0; k < 65536; k++) {
    const v = WEIGHT_STD * q[k];
    bf16[k] = f32ToBf16Bits(v);
    f16[k] = f32ToF16Bits(v);
    f32[k] = v;
  }
  f32[65536] = f32[65535];
  tables = { bf16, f16, f32 };
  return tables;
}

/** Elements [start, start + count) of a tensor's 16-bit sample stream; start must be even. */
function fill16(out: Uint16Array, table: Uint16Array, key: number, start: number): void {
  let counter = (key + Math.imul(start / 2, COUNTER_STEP)) | 0;
  const n = out.length;
  let i = 0;
  for (; i + 1 < n; i += 2) {
    const r = mix32(counter);
    counter = (counter + COUNTER_STEP) | 0;
    out[i] = table[r & 0xffff];
    out[i + 1] = table[r >>> 16];
  }
  if (i < n) out[i] = table[mix32(counter) & 0xffff];
}

/** f32 samples: the high 16 bits pick a bin, the low 16 interpolate within it. */
function fill32(out: Float32Array, table: Float32Array, key: number, start: number): void {
  let counter = (key + Math.imul(start, COUNTER_STEP)) | 0;
  for (let i = 0; i < out.length; i++) {
    const r = mix32(counter);
    counter = (counter + COUNTER_STEP) | 0;
    const bin = r >>> 16;
    out[i] = table[bin] + (table[bin + 1] - table[bin]) * ((r & 0xffff) / 65536);
  }
}

function* normalChunks(dtype: WeightDtype, key: number, count: number): Generator<Uint8Array> {
  const t = sampleTables();
  for (let start = 0; start < count; start += CHUNK_ELEMENTS) {
    const n = Math.min(CHUNK_ELEMENTS, count - start);
    if (dtype === 'f32') {
      const out = new Float32Array(n);
      fill32(out, t.f32, key, start);
      yield new Uint8Array(out.buffer);
    } else {
      const out = new Uint16Array(n);
      fill16(out, dtype === 'bf16' ? t.bf16 : t.f16, key, start);
      yield new Uint8Array(out.buffer);
    }
  }
}

function ones(dtype: WeightDtype, count: number): Uint8Array {
  if (dtype === 'f32') return new Uint8Array(new Float32Array(count).fill(1).buffer);
  return new Uint8Array(new Uint16Array(count).fill(dtype === 'bf16' ? 0x3f80 : 0x3c00).buffer);
}

/** RMSNorm scales are 1-D; every other tensor (embedding, projections, router, head) is a matrix. */
function isNorm(spec: TensorSpec): boolean {
  return spec.shape.length === 1;
}

function requirePositiveInt(name: string, value: unknown): asserts value is number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new InvalidArgumentError(`makeModel: ${name} must be a positive integer, got ${String(value)}`);
  }
}

export function validateMakeModelOptions(o: MakeModelOptions): void {
  const fail = (message: string): never => {
    throw new InvalidArgumentError(`makeModel: ${message}`);
  };
  if (o.arch !== 'mistral' && o.arch !== 'mixtral') fail(`arch must be "mistral" or "mixtral", got ${JSON.stringify(o.arch)}`);
  if (!isWeightDtype(o.dtype)) fail(`dtype must be one of ${WEIGHT_DTYPES.join(', ')}, got ${JSON.stringify(o.dtype)}`);
  for (const key of ['hiddenSize', 'numLayers', 'numHeads', 'numKvHeads', 'intermediateSize', 'vocabSize'] as const) {
    requirePositiveInt(key, o[key]);
  }
  if (o.numHeads % o.numKvHeads !== 0) fail(`numHeads ${o.numHeads} is not a multiple of numKvHeads ${o.numKvHeads}`);
  if (o.headDim !== undefined) requirePositiveInt('headDim', o.headDim);
  else if (o.hiddenSize % o.numHeads !== 0) fail(`hiddenSize ${o.hiddenSize} is not divisible by numHeads ${o.numHeads} (or give headDim)`);
  const headDim = o.headDim ?? o.hiddenSize / o.numHeads;
  if (headDim % 2 !== 0) fail(`head dim ${headDim} must be even (rotary embeddings pair its halves)`);
  if (o.arch === 'mixtral') {
    requirePositiveInt('numExperts', o.numExperts);
    requirePositiveInt('expertsPerToken', o.expertsPerToken);
    if (o.expertsPerToken > o.numExperts) fail(`expertsPerToken ${o.expertsPerToken} exceeds numExperts ${o.numExperts}`);
  } else if (o.numExperts !== undefined || o.expertsPerToken !== undefined) {
    fail('numExperts and expertsPerToken apply to arch "mixtral" only');
  }
  if (o.slidingWindow !== undefined && o.slidingWindow !== null) requirePositiveInt('slidingWindow', o.slidingWindow);
  if (!Number.isSafeInteger(o.seed)) fail(`seed must be a safe integer, got ${String(o.seed)}`);
  if (typeof o.outDir !== 'string' || o.outDir.length === 0) fail('outDir must be a non-empty path');
  if (o.maxShardBytes !== undefined) requirePositiveInt('maxShardBytes', o.maxShardBytes);
  if (o.ropeTheta !== undefined && !(typeof o.ropeTheta === 'number' && Number.isFinite(o.ropeTheta) && o.ropeTheta > 0)) {
    fail(`ropeTheta must be a positive number, got ${String(o.ropeTheta)}`);
  }
}

/** config.json in the Hugging Face format, as transformers writes it for these architectures. */
export function makeModelConfigJson(o: MakeModelOptions): Record<string, unknown> {
  const json: Record<string, unknown> = {
    architectures: [o.arch === 'mistral' ? 'MistralForCausalLM' : 'MixtralForCausalLM'],
    model_type: o.arch,
    vocab_size: o.vocabSize,
    hidden_size: o.hiddenSize,
    intermediate_size: o.intermediateSize,
    num_hidden_layers: o.numLayers,
    num_attention_heads: o.numHeads,
    num_key_value_heads: o.numKvHeads,
  };
  if (o.headDim !== undefined) json.head_dim = o.headDim;
  Object.assign(json, {
    hidden_act: 'silu',
    max_position_embeddings: MAX_POSITION_EMBEDDINGS,
    rms_norm_eps: 1e-5,
    rope_theta: o.ropeTheta ?? DEFAULT_ROPE_THETA,
    sliding_window: o.slidingWindow ?? null,
    tie_word_embeddings: false,
    torch_dtype: TORCH_DTYPE[o.dtype],
    bos_token_id: 1,
    eos_token_id: 2,
  });
  if (o.arch === 'mixtral') Object.assign(json, { num_local_experts: o.numExperts, num_experts_per_tok: o.expertsPerToken });
  return json;
}

/** Writes a random checkpoint to opts.outDir (which must not already hold weights). */
export async function makeModel(opts: MakeModelOptions): Promise<MadeModel> {
  validateMakeModelOptions(opts);
  const configJson = makeModelConfigJson(opts);
  // Parse what we are about to write, so the checkpoint is valid by the reader's own rules.
  const config: ModelConfig = parseModelConfig(JSON.stringify(configJson), join(opts.outDir, CONFIG_FILE));
  const specs = stageTensorSpecs(config, 0, config.numLayers);
  const dtype = STORAGE_DTYPE[opts.dtype];
  const sources: TensorSource[] = specs.map((spec) => {
    const count = elementCount(spec.shape);
    const data = isNorm(spec) ? () => ones(opts.dtype, count) : () => normalChunks(opts.dtype, tensorKey(opts.seed, spec.name), count);
    return { name: spec.name, dtype, shape: spec.shape, data };
  });
  const written = await writeCheckpoint(opts.outDir, sources, { config: configJson, maxShardBytes: opts.maxShardBytes });
  return { parameterCount: specs.reduce((sum, s) => sum + elementCount(s.shape), 0), bytes: written.tensorBytes };
}
