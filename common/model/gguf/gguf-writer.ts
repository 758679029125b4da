/**
 * Writes a checkpoint directory (Mistral or Mixtral) as a GGUF v3 file that llama.cpp loads as
 * architecture "llama", and that GgufCheckpoint reads back as the same model.
 *
 * Layout (all little-endian): "GGUF", version 3, tensor count (u64), key-value count (u64), the
 * key-value pairs, the tensor infos (name, dims innermost-first, ggml type, data offset), zero
 * padding to `general.alignment` (32), then each tensor's data at its offset, padded to 32.
 *
 * Weight types: F32, F16, BF16, or Q8_0 / Q4_0 for every matrix (the embedding and the head
 * included), or Q4_K_M (llama.cpp's mix, q4-k-m.ts). Norms and Mixtral's router stay F32; a
 * matrix whose rows are not whole blocks of its type falls back (F16 for Q8_0 / Q4_0). q/k rows
 * are permuted per head to llama.cpp's adjacent-pair rope layout, as llama.cpp's own converter
 * does; Mixtral's experts are stacked into one 3-D tensor per matrix and layer
 * (blk.N.ffn_gate_exps.weight: [experts, rows, cols]). Mistral's sliding window goes in
 * llama.attention.sliding_window (llama.cpp ignores it; Bora reads it).
 *
 * The vocabulary is the directory's tokenizer.json when it has one, converted to
 * tokenizer.ggml.* (gguf-tokenizer.ts); otherwise a synthetic SentencePiece-style one (random
 * checkpoints have no tokenizer); the directory's chat template, when it has one, becomes
 * tokenizer.chat_template. Tensors are converted and written one at a time, the next one read
 * while the last is written: the writer holds two tensors (stacked expert tensors) in memory,
 * never the model. bf16 weights go to the native quantizers as bf16.
 */
import { readFile, open, rename, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { CheckpointError, InvalidArgumentError } from '../../errors';
import type { Checkpoint } from '../checkpoint';
import type { ModelConfig } from '../config';
import { fromFloat32, isQuantDtype, rowBytes, toFloat32, type TensorDtype } from '../dtype';
import { attentionSpecs, expertSpecs, routerSpec, mlpSpecs } from '../weights';
import { ByteWriter, bool, f32, str, u32, type GgufValue } from './gguf-encode';
import { gatherRows, ggufLocation, ggufRopeRow } from './gguf-names';
import { readChatTemplateText } from '../../tokenizer/load-tokenizer';
import { ggufVocabFromTokenizerJson, TOKEN_TYPE, type GgufVocab } from './gguf-tokenizer';
import { FILE_TYPE_ID, GGML_TYPE_ID } from './ggml-types';
import { q4KMType } from './q4-k-m';
import { defaultQuantizeRows, type QuantizeRows } from './quantize-rows';

export type GgufWeightType = 'F32' | 'F16' | 'BF16' | 'Q8_0' | 'Q4_0' | 'Q4_K_M';
export const GGUF_WEIGHT_TYPES: readonly GgufWeightType[] = ['F32', 'F16', 'BF16', 'Q8_0', 'Q4_0', 'Q4_K_M'];

export function isGgufWeightType(value: string): value is GgufWeightType {
  return (GGUF_WEIGHT_TYPES as readonly string[]).includes(value);
}

const GGUF_VERSION = 3;
const ALIGNMENT_BYTES = 32;
const TOKENIZER_FILE = 'tokenizer.json';

const padTo = (bytes: number, alignment: number): number => Math.ceil(bytes / alignment) * alignment;

/** One GGUF tensor: its source tensors (several for a stacked expert matrix) and where it goes. */
export interface GgufTensorPlan {
  readonly ggufName: string;
  readonly sources: readonly string[];
  readonly type: TensorDtype;
  /** Dimensions innermost-first: an HF [out, in] matrix is [in, out]; stacked experts add [.., experts]. */
  readonly ne: readonly number[];
  /** For q/k projections: rows are permuted to llama.cpp's rope layout. */
  readonly rope: boolean;
  readonly byteLength: number;
  /** Offset within the data section. */
  readonly offsetBytes: number;
}

/** The 2-D matrices' type under `weightType`, for a matrix `ggufName` with rows of `cols` values. */
function matrixType(weightType: GgufWeightType, ggufName: string, cols: number, c: ModelConfig): TensorDtype {
  if (weightType === 'Q4_K_M') {
    return q4KMType({ ggufName, cols, numLayers: c.numLayers, numExperts: c.numExperts, tiedHead: c.tieWordEmbeddings });
  }
  if (isQuantDtype(weightType) && rowBytes(weightType, cols) === undefined) return 'F16';
  return weightType;
}

export function planGgufTensors(ckpt: Checkpoint, weightType: GgufWeightType): GgufTensorPlan[] {
  const c = ckpt.config;
  const specs: Omit<GgufTensorPlan, 'byteLength' | 'offsetBytes'>[] = [];
  const ggufName = (hfName: string): string => ggufLocation(hfName, c)!.ggufName;
  const add = (hfName: string, opts: { keepF32?: boolean; rope?: boolean } = {}): void => {
    const shape = ckpt.entry(hfName).shape;
    const name = ggufName(hfName);
    const type = shape.length === 2 && opts.keepF32 !== true ? matrixType(weightType, name, shape[1], c) : 'F32';
    specs.push({ ggufName: name, sources: [hfName], type, ne: [...shape].reverse(), rope: opts.rope === true });
  };
  const addExperts = (pick: (e: number) => string): void => {
    const sources = Array.from({ length: c.numExperts }, (_, e) => pick(e));
    const shape = ckpt.entry(sources[0]).shape;
    const name = ggufName(sources[0]);
    specs.push({ ggufName: name, sources, type: matrixType(weightType, name, shape[1], c), ne: [shape[1], shape[0], c.numExperts], rope: false });
  };
  add('model.embed_tokens.weight');
  for (let l = 0; l < c.numLayers; l++) {
    const a = attentionSpecs(c, l);
    add(a.inputNorm.name);
    add(a.q.name, { rope: true });
    add(a.k.name, { rope: true });
    add(a.v.name);
    add(a.o.name);
    add(a.postAttentionNorm.name);
    if (c.numExperts === 0) {
      const m = mlpSpecs(c, l);
      add(m.gate.name);
      add(m.up.name);
      add(m.down.name);
    } else {
      add(routerSpec(c, l).name, { keepF32: true });
      addExperts((e) => expertSpecs(c, l, e).gate.name);
      addExperts((e) => expertSpecs(c, l, e).up.name);
      addExperts((e) => expertSpecs(c, l, e).down.name);
    }
  }
  add('model.norm.weight');
  // A tied checkpoint has no lm_head: llama.cpp then reuses token_embd.
  if (ckpt.has('lm_head.weight')) add('lm_head.weight');

  let offsetBytes = 0;
  return specs.map((spec) => {
    const rows = spec.ne.slice(1).reduce((a, b) => a * b, 1);
    const byteLength = rows * rowBytes(spec.type, spec.ne[0])!;
    const plan = { ...spec, byteLength, offsetBytes };
    offsetBytes += padTo(byteLength, ALIGNMENT_BYTES);
    return plan;
  });
}

/** The bytes of one source tensor in the plan's type and layout. */
async function sourceData(ckpt: Checkpoint, plan: GgufTensorPlan, source: string, quantize: QuantizeRows): Promise<Uint8Array> {
  const raw = await ckpt.readRaw(source);
  const cols = plan.ne[0];
  const rows = raw.shape.length === 2 ? raw.shape[0] : 1;
  // HF row r goes to GGUF row ggufRopeRow(r): GGUF row g is HF row r where ggufRopeRow(r) = g.
  let bytes = raw.bytes;
  if (plan.rope) {
    const inverse = new Int32Array(rows);
    for (let r = 0; r < rows; r++) inverse[ggufRopeRow(r, ckpt.config.headDim)] = r;
    bytes = gatherRows(bytes, rows, rowBytes(raw.dtype, cols)!, (g) => inverse[g]);
  }
  if (plan.type === raw.dtype) return bytes;
  // bf16 goes to the quantizer as it is stored: converting a whole tensor to float32 in
  // JavaScript first cost more than the quantizing itself (docs/benchmarks.md, bora quantize).
  if (isQuantDtype(plan.type) && raw.dtype === 'BF16') return quantize(plan.type, bf16Bits(bytes), rows, cols);
  const values = toFloat32(bytes, raw.dtype);
  if (isQuantDtype(plan.type)) return quantize(plan.type, values, rows, cols);
  return fromFloat32(values, plan.type);
}

/** The bytes as bf16 bits (copied only when not 2-byte aligned). */
function bf16Bits(bytes: Uint8Array): Uint16Array {
  const aligned = bytes.byteOffset % 2 === 0 ? bytes : bytes.slice();
  return new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 2);
}

async function tensorData(ckpt: Checkpoint, plan: GgufTensorPlan, quantize: QuantizeRows): Promise<Uint8Array> {
  if (plan.sources.length === 1) return sourceData(ckpt, plan, plan.sources[0], quantize);
  const out = new Uint8Array(plan.byteLength);
  const partBytes = plan.byteLength / plan.sources.length;
  for (let i = 0; i < plan.sources.length; i++) {
    const part = await sourceData(ckpt, plan, plan.sources[i], quantize);
    if (part.byteLength !== partBytes) throw new CheckpointError(ckpt.dir, `${part.byteLength} bytes, expected ${partBytes}`, { tensor: plan.sources[i] });
    out.set(part, i * partBytes);
  }
  return out;
}

// ---- Vocabulary --------------------------------------------------------------------------

/** A SentencePiece-style vocabulary of `size` tokens: specials, 256 byte tokens, pieces, placeholders. */
export function syntheticVocab(size: number): GgufVocab {
  const specials: [string, number][] = [
    ['<unk>', TOKEN_TYPE.UNKNOWN],
    ['<s>', TOKEN_TYPE.CONTROL],
    ['</s>', TOKEN_TYPE.CONTROL],
  ];
  if (size < specials.length + 256) throw new InvalidArgumentError(`vocab of ${size} tokens is too small for a byte-fallback vocabulary`);
  const tokens: string[] = [];
  const scores = new Float32Array(size);
  const types = new Int32Array(size);
  for (const [text, type] of specials) {
    types[tokens.length] = type;
    tokens.push(text);
  }
  for (let byte = 0; byte < 256; byte++) {
    types[tokens.length] = TOKEN_TYPE.BYTE;
    tokens.push(`<0x${byte.toString(16).toUpperCase().padStart(2, '0')}>`);
  }
  // The word-boundary piece and printable ASCII, so plain text round-trips through the tokenizer
  // (byte tokens decode "\u2581" literally, not as a space), then placeholders.
  const pieces = ['\u2581', ...Array.from({ length: 0x7f - 0x21 }, (_, i) => String.fromCharCode(0x21 + i))];
  const firstNormal = tokens.length;
  for (let id = firstNormal; id < size; id++) {
    types[id] = TOKEN_TYPE.NORMAL;
    scores[id] = -id;
    tokens.push(pieces[id - firstNormal] ?? `\u2581t${id}`);
  }
  return { model: 'llama', tokens, scores, types, merges: [], unknownId: 0, addBos: true };
}

/** The directory's tokenizer.json as a GGUF vocabulary, or the synthetic one when it has none. */
async function vocabOf(ckpt: Checkpoint): Promise<GgufVocab> {
  const file = join(ckpt.dir, TOKENIZER_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return syntheticVocab(ckpt.config.vocabSize);
    throw new CheckpointError(file, `cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`, { cause: err });
  }
  return ggufVocabFromTokenizerJson(text, file, ckpt.config.vocabSize);
}

// ---- The file ----------------------------------------------------------------------------

function metadata(c: ModelConfig, weightType: GgufWeightType, name: string, vocab: GgufVocab): [string, GgufValue][] {
  const meta: [string, GgufValue][] = [
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
  ];
  if (isQuantDtype(weightType) || weightType === 'Q4_K_M') meta.push(['general.quantization_version', u32(2)]);
  if (c.slidingWindow !== null) meta.push(['llama.attention.sliding_window', u32(c.slidingWindow)]);
  if (c.numExperts > 0) meta.push(['llama.expert_count', u32(c.numExperts)], ['llama.expert_used_count', u32(c.expertsPerToken)]);
  meta.push(
    ['tokenizer.ggml.model', str(vocab.model)],
    ['tokenizer.ggml.tokens', { kind: 'strings', value: vocab.tokens }],
    ['tokenizer.ggml.token_type', { kind: 'i32s', value: vocab.types }],
  );
  if (vocab.pre !== undefined) meta.push(['tokenizer.ggml.pre', str(vocab.pre)]);
  if (vocab.scores !== undefined) meta.push(['tokenizer.ggml.scores', { kind: 'f32s', value: vocab.scores }]);
  if (vocab.merges.length > 0) meta.push(['tokenizer.ggml.merges', { kind: 'strings', value: vocab.merges }]);
  if (vocab.unknownId !== undefined) meta.push(['tokenizer.ggml.unknown_token_id', u32(vocab.unknownId)]);
  meta.push(
    ['tokenizer.ggml.bos_token_id', u32(c.bosTokenId)],
    ['tokenizer.ggml.eos_token_id', u32(c.eosTokenId)],
    ['tokenizer.ggml.add_bos_token', bool(vocab.addBos)],
    ['tokenizer.ggml.add_eos_token', bool(false)],
  );
  return meta;
}

/** Header, metadata and tensor infos, padded to the alignment: everything before the data. */
function encodePreamble(meta: [string, GgufValue][], plans: readonly GgufTensorPlan[]): Buffer {
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

/** A promise started ahead of its await: its rejection is not unhandled if the loop stops first. */
function prefetch<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => undefined);
  return promise;
}

export interface GgufWriteOptions {
  /** general.name; default the model type. */
  readonly name?: string;
  /** Float32 (or bf16) rows -> quantized blocks; default the native quantizers (quantize-rows.ts). */
  readonly quantize?: QuantizeRows;
  /** Called after each tensor is written, with its plan (progress reports, tests). */
  readonly onTensor?: (plan: GgufTensorPlan, data: Uint8Array) => void;
  /**
   * tokenizer.chat_template: this text; default the directory's own template (chat_template.jinja
   * or tokenizer_config.json's), none when it has none.
   */
  readonly chatTemplate?: string;
}

export interface GgufWriteResult {
  readonly path: string;
  readonly fileBytes: number;
  readonly tensorCount: number;
  /** Bytes of tensor data read from the checkpoint (its stored size). */
  readonly sourceBytes: number;
}

/**
 * Writes `ckpt` as a GGUF file at `path` (via `path.partial`, renamed when complete), with the
 * matrices in `weightType`.
 */
export async function writeGguf(ckpt: Checkpoint, path: string, weightType: GgufWeightType, options: GgufWriteOptions = {}): Promise<GgufWriteResult> {
  const quantize = options.quantize ?? defaultQuantizeRows();
  const plans = planGgufTensors(ckpt, weightType);
  const meta = metadata(ckpt.config, weightType, options.name ?? `bora-${ckpt.config.modelType}`, await vocabOf(ckpt));
  const chatTemplate = options.chatTemplate ?? (await readChatTemplateText(ckpt.dir));
  if (chatTemplate !== undefined) meta.push(['tokenizer.chat_template', str(chatTemplate)]);
  const preamble = encodePreamble(meta, plans);
  const partial = `${path}.partial`;
  const handle = await open(partial, 'w');
  let fileBytes = 0;
  let sourceBytes = 0;
  try {
    await writeAll(handle, preamble);
    fileBytes += preamble.length;
    // One tensor ahead: the next tensor's read (libuv's pool) runs while this one is written.
    let next: Promise<Uint8Array> | undefined = plans.length > 0 ? prefetch(tensorData(ckpt, plans[0], quantize)) : undefined;
    for (const [i, plan] of plans.entries()) {
      const data = await next!;
      next = i + 1 < plans.length ? prefetch(tensorData(ckpt, plans[i + 1], quantize)) : undefined;
      if (data.byteLength !== plan.byteLength) throw new CheckpointError(path, `${data.byteLength} bytes, expected ${plan.byteLength}`, { tensor: plan.ggufName });
      await writeAll(handle, data);
      const padding = padTo(data.byteLength, ALIGNMENT_BYTES) - data.byteLength;
      if (padding > 0) await writeAll(handle, new Uint8Array(padding));
      fileBytes += data.byteLength + padding;
      for (const source of plan.sources) sourceBytes += ckpt.entry(source).byteLength;
      options.onTensor?.(plan, data);
    }
  } catch (err) {
    await handle.close();
    await rm(partial, { force: true });
    throw err;
  }
  await handle.close();
  await rename(partial, path);
  return { path, fileBytes, tensorCount: plans.length, sourceBytes };
}
