/**
 * A GGUF v3 writer for benchmarks: converts a Bora checkpoint (Mistral architecture) into a file
 * llama.cpp loads as architecture "llama", so both engines can run the same weights.
 *
 * Layout (all little-endian): "GGUF", version 3, tensor count (u64), key-value count (u64), the
 * key-value pairs, the tensor infos (name, dims innermost-first, ggml type, data offset), zero
 * padding to `general.alignment` (32), then each tensor's data at its offset, padded to 32.
 *
 * The 2-D weights are stored as F32, F16, BF16 or pure Q8_0 / Q4_0 (every matrix, the embedding
 * and the LM head included, unlike llama-quantize's default mixes); norms stay F32. q/k rows are
 * permuted per head from the Hugging Face rotate-half layout to llama.cpp's adjacent-pair rope
 * layout, as llama.cpp's own converter does, so the file computes the same function as the
 * checkpoint. Mistral's sliding window has no "llama" key; it is irrelevant below 4096 tokens.
 * The vocabulary is synthetic (a random checkpoint has no tokenizer): <unk>, <s>, </s>, the 256
 * byte tokens, \u2581 and printable ASCII, then unique placeholder strings. Tensors are converted
 * and written one at a time.
 */
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import type { Checkpoint } from '../common/model/checkpoint';
import { rowBytes as storedRowBytes, f32ToF16Bits, fromFloat32, toFloat32 } from '../common/model/dtype';

export type GgufWeightType = 'F32' | 'F16' | 'BF16' | 'Q8_0' | 'Q4_0';
export const GGUF_WEIGHT_TYPES: readonly GgufWeightType[] = ['F32', 'F16', 'BF16', 'Q8_0', 'Q4_0'];

export function isGgufWeightType(value: string): value is GgufWeightType {
  return (GGUF_WEIGHT_TYPES as readonly string[]).includes(value);
}

const GGUF_VERSION = 3;
const ALIGNMENT_BYTES = 32;
/** Elements per quantization block of Q8_0 and Q4_0. */
const BLOCK_ELEMENTS = 32;

/** ggml_type ids as stored in tensor infos. */
const GGML_TYPE_ID: Readonly<Record<GgufWeightType, number>> = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 8, BF16: 30 };
/** llama_ftype ids for general.file_type ("mostly" this type). */
const FILE_TYPE_ID: Readonly<Record<GgufWeightType, number>> = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 7, BF16: 32 };

/** Bytes of one row of `elements` values: Q8_0 blocks hold an f16 scale and 32 int8, Q4_0 an f16 scale and 32 nibbles. */
function rowBytes(type: GgufWeightType, elements: number): number {
  switch (type) {
    case 'F32':
      return 4 * elements;
    case 'F16':
    case 'BF16':
      return 2 * elements;
    case 'Q8_0':
      return (elements / BLOCK_ELEMENTS) * (2 + BLOCK_ELEMENTS);
    case 'Q4_0':
      return (elements / BLOCK_ELEMENTS) * (2 + BLOCK_ELEMENTS / 2);
  }
}

const padTo = (bytes: number, alignment: number): number => Math.ceil(bytes / alignment) * alignment;

// ---- Metadata values ----------------------------------------------------------------------

/** GGUF metadata value type ids. */
const enum ValueType {
  U32 = 4,
  I32 = 5,
  F32 = 6,
  Bool = 7,
  String = 8,
  Array = 9,
}

type MetaValue =
  | { readonly kind: 'u32'; readonly value: number }
  | { readonly kind: 'f32'; readonly value: number }
  | { readonly kind: 'bool'; readonly value: boolean }
  | { readonly kind: 'string'; readonly value: string }
  | { readonly kind: 'strings'; readonly value: readonly string[] }
  | { readonly kind: 'f32s'; readonly value: Float32Array }
  | { readonly kind: 'i32s'; readonly value: Int32Array };

const u32 = (value: number): MetaValue => ({ kind: 'u32', value });
const f32 = (value: number): MetaValue => ({ kind: 'f32', value });
const str = (value: string): MetaValue => ({ kind: 'string', value });

/** Accumulates little-endian fields into chunks; `bytes()` joins them. */
class ByteWriter {
  private readonly chunks: Buffer[] = [];
  length = 0;

  private push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  u32(value: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(value);
    this.push(b);
  }

  u64(value: number): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(value));
    this.push(b);
  }

  string(value: string): void {
    const utf8 = Buffer.from(value, 'utf8');
    this.u64(utf8.length);
    this.push(utf8);
  }

  raw(bytes: Uint8Array): void {
    this.push(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  }

  value(v: MetaValue): void {
    switch (v.kind) {
      case 'u32':
        this.u32(ValueType.U32);
        return this.u32(v.value);
      case 'f32': {
        this.u32(ValueType.F32);
        const b = Buffer.alloc(4);
        b.writeFloatLE(v.value);
        return this.push(b);
      }
      case 'bool':
        this.u32(ValueType.Bool);
        return this.push(Buffer.from([v.value ? 1 : 0]));
      case 'string':
        this.u32(ValueType.String);
        return this.string(v.value);
      case 'strings':
        this.u32(ValueType.Array);
        this.u32(ValueType.String);
        this.u64(v.value.length);
        for (const s of v.value) this.string(s);
        return;
      case 'f32s':
      case 'i32s':
        this.u32(ValueType.Array);
        this.u32(v.kind === 'f32s' ? ValueType.F32 : ValueType.I32);
        this.u64(v.value.length);
        return this.raw(new Uint8Array(v.value.buffer, v.value.byteOffset, v.value.byteLength));
    }
  }

  bytes(): Buffer {
    return Buffer.concat(this.chunks, this.length);
  }
}

// ---- Vocabulary --------------------------------------------------------------------------

/** llama.cpp token types. */
const TOKEN_NORMAL = 1;
const TOKEN_UNKNOWN = 2;
const TOKEN_CONTROL = 3;
const TOKEN_BYTE = 6;

interface Vocab {
  readonly tokens: string[];
  readonly scores: Float32Array;
  readonly types: Int32Array;
}

/** A SentencePiece-style vocabulary of `size` tokens: specials, 256 byte tokens, pieces, placeholders. */
function syntheticVocab(size: number): Vocab {
  const specials: [string, number][] = [
    ['<unk>', TOKEN_UNKNOWN],
    ['<s>', TOKEN_CONTROL],
    ['</s>', TOKEN_CONTROL],
  ];
  if (size < specials.length + 256) throw new Error(`vocab of ${size} tokens is too small for a byte-fallback vocabulary`);
  const tokens: string[] = [];
  const scores = new Float32Array(size);
  const types = new Int32Array(size);
  for (const [text, type] of specials) {
    types[tokens.length] = type;
    tokens.push(text);
  }
  for (let byte = 0; byte < 256; byte++) {
    types[tokens.length] = TOKEN_BYTE;
    tokens.push(`<0x${byte.toString(16).toUpperCase().padStart(2, '0')}>`);
  }
  // The word-boundary piece and printable ASCII, so plain text round-trips through the tokenizer
  // (byte tokens decode "\u2581" literally, not as a space), then placeholders.
  const pieces = ['\u2581', ...Array.from({ length: 0x7f - 0x21 }, (_, i) => String.fromCharCode(0x21 + i))];
  const firstNormal = tokens.length;
  for (let id = firstNormal; id < size; id++) {
    types[id] = TOKEN_NORMAL;
    scores[id] = -id;
    tokens.push(pieces[id - firstNormal] ?? `\u2581t${id}`);
  }
  return { tokens, scores, types };
}

// ---- Tensor plan -------------------------------------------------------------------------

interface TensorPlan {
  readonly ggufName: string;
  readonly hfName: string;
  readonly type: GgufWeightType;
  /** Dimensions innermost-first: an HF [out, in] matrix is [in, out]. */
  readonly ne: readonly number[];
  /** For q/k projections: the heads whose rows are permuted to llama.cpp's rope layout. */
  readonly ropeHeads: number;
  readonly byteLength: number;
  /** Offset within the data section. */
  readonly offsetBytes: number;
}

function planTensors(ckpt: Checkpoint, weightType: GgufWeightType): TensorPlan[] {
  const c = ckpt.config;
  const specs: Omit<TensorPlan, 'byteLength' | 'offsetBytes'>[] = [];
  const add = (ggufName: string, hfName: string, ropeHeads = 0): void => {
    const shape = ckpt.entry(hfName).shape;
    const isMatrix = shape.length === 2;
    if (isMatrix && weightType.startsWith('Q') && shape[1] % BLOCK_ELEMENTS !== 0) {
      throw new Error(`${hfName}: row length ${shape[1]} is not a multiple of ${BLOCK_ELEMENTS}, cannot store ${weightType}`);
    }
    specs.push({ ggufName, hfName, type: isMatrix ? weightType : 'F32', ne: [...shape].reverse(), ropeHeads });
  };
  add('token_embd.weight', 'model.embed_tokens.weight');
  for (let l = 0; l < c.numLayers; l++) {
    const hf = `model.layers.${l}`;
    const blk = `blk.${l}`;
    add(`${blk}.attn_norm.weight`, `${hf}.input_layernorm.weight`);
    add(`${blk}.attn_q.weight`, `${hf}.self_attn.q_proj.weight`, c.numHeads);
    add(`${blk}.attn_k.weight`, `${hf}.self_attn.k_proj.weight`, c.numKvHeads);
    add(`${blk}.attn_v.weight`, `${hf}.self_attn.v_proj.weight`);
    add(`${blk}.attn_output.weight`, `${hf}.self_attn.o_proj.weight`);
    add(`${blk}.ffn_norm.weight`, `${hf}.post_attention_layernorm.weight`);
    add(`${blk}.ffn_gate.weight`, `${hf}.mlp.gate_proj.weight`);
    add(`${blk}.ffn_up.weight`, `${hf}.mlp.up_proj.weight`);
    add(`${blk}.ffn_down.weight`, `${hf}.mlp.down_proj.weight`);
  }
  add('output_norm.weight', 'model.norm.weight');
  // A tied checkpoint has no lm_head: llama.cpp then reuses token_embd.
  if (ckpt.has('lm_head.weight')) add('output.weight', 'lm_head.weight');

  let offsetBytes = 0;
  return specs.map((spec) => {
    const rows = spec.ne.slice(1).reduce((a, b) => a * b, 1);
    const byteLength = rows * rowBytes(spec.type, spec.ne[0]);
    const plan = { ...spec, byteLength, offsetBytes };
    offsetBytes += padTo(byteLength, ALIGNMENT_BYTES);
    return plan;
  });
}

// ---- Tensor data -------------------------------------------------------------------------

/**
 * Reorders the rows of each head from the Hugging Face layout (rotary pairs (i, i + d/2)) to
 * llama.cpp's (pairs (2i, 2i + 1)): row s * d/2 + i of a head moves to row 2i + s.
 */
function permuteRopeRows(bytes: Uint8Array, heads: number, headDim: number, rowByteLength: number): Uint8Array {
  const out = new Uint8Array(bytes.byteLength);
  const half = headDim / 2;
  for (let h = 0; h < heads; h++) {
    for (let s = 0; s < 2; s++) {
      for (let i = 0; i < half; i++) {
        const from = (h * headDim + s * half + i) * rowByteLength;
        out.set(bytes.subarray(from, from + rowByteLength), (h * headDim + 2 * i + s) * rowByteLength);
      }
    }
  }
  return out;
}

/** C's roundf: halves away from zero. */
const roundAway = (x: number): number => Math.sign(x) * Math.round(Math.abs(x));

/** Q8_0: per 32 values, scale d = max|x| / 127 (f16), then round(x / d) as int8. */
function quantizeQ8_0(values: Float32Array): Uint8Array {
  const blocks = values.length / BLOCK_ELEMENTS;
  const blockBytes = 2 + BLOCK_ELEMENTS;
  const out = new Uint8Array(blocks * blockBytes);
  const view = new DataView(out.buffer);
  const quants = new Int8Array(out.buffer);
  for (let b = 0; b < blocks; b++) {
    const first = b * BLOCK_ELEMENTS;
    let maxAbs = 0;
    for (let j = 0; j < BLOCK_ELEMENTS; j++) maxAbs = Math.max(maxAbs, Math.abs(values[first + j]));
    const d = maxAbs / 127;
    const inv = d === 0 ? 0 : 1 / d;
    const at = b * blockBytes;
    view.setUint16(at, f32ToF16Bits(d), true);
    for (let j = 0; j < BLOCK_ELEMENTS; j++) quants[at + 2 + j] = roundAway(values[first + j] * inv);
  }
  return out;
}

/**
 * Q4_0: per 32 values, scale d = m / -8 where m is the value of largest magnitude (f16); each
 * value becomes a nibble q = min(15, trunc(x / d + 8.5)), read back as (q - 8) * d. Byte j holds
 * value j in its low nibble and value j + 16 in its high nibble.
 */
function quantizeQ4_0(values: Float32Array): Uint8Array {
  const blocks = values.length / BLOCK_ELEMENTS;
  const half = BLOCK_ELEMENTS / 2;
  const blockBytes = 2 + half;
  const out = new Uint8Array(blocks * blockBytes);
  const view = new DataView(out.buffer);
  for (let b = 0; b < blocks; b++) {
    const first = b * BLOCK_ELEMENTS;
    let extreme = 0;
    for (let j = 0; j < BLOCK_ELEMENTS; j++) if (Math.abs(values[first + j]) > Math.abs(extreme)) extreme = values[first + j];
    const d = extreme / -8;
    const inv = d === 0 ? 0 : 1 / d;
    const at = b * blockBytes;
    view.setUint16(at, f32ToF16Bits(d), true);
    for (let j = 0; j < half; j++) {
      const low = Math.min(15, Math.trunc(values[first + j] * inv + 8.5));
      const high = Math.min(15, Math.trunc(values[first + half + j] * inv + 8.5));
      out[at + 2 + j] = low | (high << 4);
    }
  }
  return out;
}

/** The tensor's bytes as stored in the GGUF file. */
async function tensorData(ckpt: Checkpoint, plan: TensorPlan): Promise<Uint8Array> {
  const raw = await ckpt.readRaw(plan.hfName, [...plan.ne].reverse());
  const headDim = ckpt.config.headDim;
  const bytes = plan.ropeHeads > 0 ? permuteRopeRows(raw.bytes, plan.ropeHeads, headDim, storedRowBytes(raw.dtype, plan.ne[0])!) : raw.bytes;
  if (plan.type === raw.dtype) return bytes;
  const values = toFloat32(bytes, raw.dtype);
  switch (plan.type) {
    case 'F32':
    case 'F16':
    case 'BF16':
      return fromFloat32(values, plan.type);
    case 'Q8_0':
      return quantizeQ8_0(values);
    case 'Q4_0':
      return quantizeQ4_0(values);
  }
}

// ---- The file ----------------------------------------------------------------------------

function metadata(ckpt: Checkpoint, weightType: GgufWeightType, name: string): [string, MetaValue][] {
  const c = ckpt.config;
  const vocab = syntheticVocab(c.vocabSize);
  return [
    ['general.architecture', str('llama')],
    ['general.name', str(name)],
    ['general.alignment', u32(ALIGNMENT_BYTES)],
    ['general.file_type', u32(FILE_TYPE_ID[weightType])],
    ['llama.vocab_size', u32(c.vocabSize)],
    ['llama.context_length', u32(c.maxPositionEmbeddings)],
    ['llama.embedding_length', u32(c.hiddenSize)],
    ['llama.block_count', u32(c.numLayers)],
    ['llama.feed_forward_length', u32(c.intermediateSize)],
    ['llama.attention.head_count', u32(c.numHeads)],
    ['llama.attention.head_count_kv', u32(c.numKvHeads)],
    ['llama.attention.key_length', u32(c.headDim)],
    ['llama.attention.value_length', u32(c.headDim)],
    ['llama.attention.layer_norm_rms_epsilon', f32(c.rmsNormEps)],
    ['llama.rope.dimension_count', u32(c.headDim)],
    ['llama.rope.freq_base', f32(c.ropeTheta)],
    ['tokenizer.ggml.model', str('llama')],
    ['tokenizer.ggml.tokens', { kind: 'strings', value: vocab.tokens }],
    ['tokenizer.ggml.scores', { kind: 'f32s', value: vocab.scores }],
    ['tokenizer.ggml.token_type', { kind: 'i32s', value: vocab.types }],
    ['tokenizer.ggml.unknown_token_id', u32(0)],
    ['tokenizer.ggml.bos_token_id', u32(1)],
    ['tokenizer.ggml.eos_token_id', u32(2)],
    ['tokenizer.ggml.add_bos_token', { kind: 'bool', value: true }],
  ];
}

/** Header, metadata and tensor infos, padded to the alignment: everything before the data. */
function encodePreamble(meta: [string, MetaValue][], plans: readonly TensorPlan[]): Buffer {
  const w = new ByteWriter();
  w.raw(Buffer.from('GGUF', 'ascii'));
  w.u32(GGUF_VERSION);
  w.u64(plans.length);
  w.u64(meta.length);
  for (const [key, value] of meta) {
    w.string(key);
    w.value(value);
  }
  for (const plan of plans) {
    w.string(plan.ggufName);
    w.u32(plan.ne.length);
    for (const dim of plan.ne) w.u64(dim);
    w.u32(GGML_TYPE_ID[plan.type]);
    w.u64(plan.offsetBytes);
  }
  w.raw(new Uint8Array(padTo(w.length, ALIGNMENT_BYTES) - w.length));
  return w.bytes();
}

async function writeAll(handle: FileHandle, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.byteLength) done += (await handle.write(bytes, done, bytes.byteLength - done)).bytesWritten;
}

export interface GgufWriteResult {
  readonly path: string;
  readonly fileBytes: number;
  readonly tensorCount: number;
}

/**
 * Writes `ckpt` as a GGUF file at `path` (via `path.partial`, renamed when complete), with the
 * 2-D weights in `weightType`. Only dense Mistral checkpoints are supported.
 */
export async function writeGguf(ckpt: Checkpoint, path: string, weightType: GgufWeightType, name = 'bora-mistral'): Promise<GgufWriteResult> {
  if (ckpt.config.modelType !== 'mistral') throw new Error(`GGUF export supports model_type "mistral" only, not "${ckpt.config.modelType}"`);
  const plans = planTensors(ckpt, weightType);
  const preamble = encodePreamble(metadata(ckpt, weightType, name), plans);
  const partial = `${path}.partial`;
  const handle = await open(partial, 'w');
  let fileBytes = 0;
  try {
    await writeAll(handle, preamble);
    fileBytes += preamble.length;
    for (const plan of plans) {
      const data = await tensorData(ckpt, plan);
      if (data.byteLength !== plan.byteLength) throw new Error(`${plan.ggufName}: ${data.byteLength} bytes, expected ${plan.byteLength}`);
      await writeAll(handle, data);
      const padding = padTo(data.byteLength, ALIGNMENT_BYTES) - data.byteLength;
      if (padding > 0) await writeAll(handle, new Uint8Array(padding));
      fileBytes += data.byteLength + padding;
    }
  } catch (err) {
    await handle.close();
    await rm(partial, { force: true });
    throw err;
  }
  await handle.close();
  await rename(partial, path);
  return { path, fileBytes, tensorCount: plans.length };
}
