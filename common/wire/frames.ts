/**
 * Activation and result frames: the domain form (StageFrame, ResultBatch) and their wire form,
 * chunked below the gRPC message limit. A Reassembler per stream puts chunks back together and
 * refuses anything malformed (chunks out of order, mixed batches, wrong byte counts).
 */
import { InvalidArgumentError } from '../errors';
import { sequenceId } from '../ids';
import type { SliceInput } from '../engine/stage-engine';
import type { ActivationFrame, ResultFrame, WireSlice, WireTensor } from './messages';
import { FRAME_CHUNK_BYTES } from './proto';
import { decodeF32, encodeF32 } from './tensor-codec';

/** One micro-batch entering stage `stageIndex` under plan `planEpoch`. */
export interface StageFrame {
  readonly planEpoch: number;
  readonly batchId: number;
  readonly stageIndex: number;
  readonly slices: readonly SliceInput[];
  /** (sum of tokenCount, H); absent into the first stage. */
  readonly hidden?: Float32Array;
  /** Set when an earlier stage failed this micro-batch; it is passed on to the coordinator. */
  readonly error?: FrameError;
  /** The coordinator could not reach etcd when it sent this (see worker.proto). */
  readonly etcdOutage?: boolean;
  /** Prefix-cache blocks the first stage evicted (worker/prefix-stage.ts); later stages drop them too. */
  readonly prefixEvicted?: readonly string[];
  /** An embedding micro-batch: the last stage returns pooled hidden states (see worker.proto). */
  readonly embed?: boolean;
}

export interface FrameError {
  readonly message: string;
  /** gRPC status code. */
  readonly code: number;
}

/** The last stage's output for one micro-batch: logits (slices, V), or the error that stopped it. */
export interface ResultBatch {
  readonly planEpoch: number;
  readonly batchId: number;
  readonly slices: readonly SliceInput[];
  readonly logits?: Float32Array;
  readonly error?: FrameError;
  /** An embedding micro-batch: `logits` holds (slices, H) sums of final-normed hidden states. */
  readonly embed?: boolean;
}

export function sliceToWire(s: SliceInput): WireSlice {
  return {
    sequenceId: s.id,
    startPosition: s.startPosition,
    tokenCount: s.tokenCount,
    tokenIds: s.tokenIds === undefined ? [] : [...s.tokenIds],
    prefixKey: s.prefix?.key ?? '',
    prefixTokens: s.prefix?.tokens ?? 0,
  };
}

/** Longest prefix key accepted (keys are 32 hex digits). */
const MAX_PREFIX_KEY_CHARS = 64;

export function sliceFromWire(w: WireSlice): SliceInput {
  if (w.sequenceId === '') throw new InvalidArgumentError('a slice has an empty sequence_id');
  if (w.tokenCount <= 0) throw new InvalidArgumentError(`slice ${w.sequenceId}: token_count must be positive`);
  if (w.tokenIds.length !== 0 && w.tokenIds.length !== w.tokenCount) {
    throw new InvalidArgumentError(`slice ${w.sequenceId}: ${w.tokenIds.length} token ids for token_count ${w.tokenCount}`);
  }
  if ((w.prefixKey === '') !== (w.prefixTokens === 0) || w.prefixKey.length > MAX_PREFIX_KEY_CHARS || w.prefixTokens > w.startPosition) {
    throw new InvalidArgumentError(`slice ${w.sequenceId}: prefix_key and prefix_tokens (${w.prefixTokens}) must come together, name a key of at most ${MAX_PREFIX_KEY_CHARS} characters and end at start_position ${w.startPosition}`);
  }
  return {
    id: sequenceId(w.sequenceId),
    startPosition: w.startPosition,
    tokenCount: w.tokenCount,
    tokenIds: w.tokenIds.length === 0 ? undefined : w.tokenIds,
    ...(w.prefixKey === '' ? {} : { prefix: { key: w.prefixKey, tokens: w.prefixTokens } }),
  };
}

/** Splits a tensor's bytes into chunk-sized pieces; the first piece carries dtype and shape. */
function tensorPieces(tensor: WireTensor | undefined): (WireTensor | null)[] {
  if (tensor === undefined) return [null];
  const pieces: WireTensor[] = [];
  for (let offset = 0; offset < tensor.data.byteLength || offset === 0; offset += FRAME_CHUNK_BYTES) {
    const data = tensor.data.subarray(offset, offset + FRAME_CHUNK_BYTES);
    pieces.push(offset === 0 ? { ...tensor, data } : { dtype: 'DTYPE_UNSPECIFIED', shape: [], data });
    if (tensor.data.byteLength === 0) break;
  }
  return pieces;
}

export function encodeStageFrame(f: StageFrame, hiddenSize: number): ActivationFrame[] {
  const tensor = f.hidden === undefined ? undefined : encodeF32(f.hidden, [f.hidden.length / hiddenSize, hiddenSize]);
  const pieces = tensorPieces(tensor);
  return pieces.map((hidden, chunkIndex) => ({
    planEpoch: f.planEpoch,
    batchId: f.batchId,
    stageIndex: f.stageIndex,
    chunkIndex,
    chunkCount: pieces.length,
    slices: chunkIndex === 0 ? f.slices.map(sliceToWire) : [],
    hidden,
    error: f.error?.message ?? '',
    code: f.error?.code ?? 0,
    etcdOutage: f.etcdOutage === true,
    prefixEvicted: chunkIndex === 0 && f.prefixEvicted !== undefined ? [...f.prefixEvicted] : [],
    embed: f.embed === true,
  }));
}

export function encodeResult(r: ResultBatch, vocabSize: number): ResultFrame[] {
  const width = r.embed === true ? (r.logits?.length ?? 0) / Math.max(1, r.slices.length) : vocabSize;
  const tensor = r.logits === undefined ? undefined : encodeF32(r.logits, [r.logits.length / width, width]);
  const pieces = tensorPieces(tensor);
  return pieces.map((logits, chunkIndex) => ({
    planEpoch: r.planEpoch,
    batchId: r.batchId,
    chunkIndex,
    chunkCount: pieces.length,
    slices: chunkIndex === 0 ? r.slices.map(sliceToWire) : [],
    logits,
    error: r.error?.message ?? '',
    code: r.error?.code ?? 0,
    embed: r.embed === true,
  }));
}

/**
 * The most tensor bytes one reassembled frame may hold: far above a real frame (a 512-token
 * micro-batch of a 4096-wide model is 8 MiB of activations; 32 rows of 32000 logits are 4 MiB)
 * and far below what would hurt a worker.
 */
export const MAX_FRAME_TENSOR_BYTES = 256 * 1024 * 1024;

interface ChunkLike {
  batchId: number;
  planEpoch: number;
  chunkIndex: number;
  chunkCount: number;
}

/**
 * Collects the chunks of one stream. Chunks of one batch arrive in order and are not interleaved
 * with other batches (a stream is written by one sender, one frame at a time).
 */
export class Reassembler<F extends ChunkLike> {
  private first: F | undefined;
  private pieces: Buffer[] = [];
  private bytes = 0;

  /**
   * `maxTensorBytes`: the most a frame's chunks may add up to. A sender that keeps sending
   * chunks of a frame that never ends would otherwise grow this buffer without bound; the chunk
   * that crosses the limit is refused and the partial frame dropped.
   */
  constructor(
    private readonly tensorOf: (f: F) => WireTensor | null,
    private readonly maxTensorBytes = MAX_FRAME_TENSOR_BYTES,
  ) {}

  /** Adds a chunk; returns the first chunk and the whole tensor once the last chunk is in. */
  push(chunk: F): { frame: F; tensor: WireTensor | null } | undefined {
    if (chunk.chunkCount < 1 || chunk.chunkIndex >= chunk.chunkCount) {
      throw new InvalidArgumentError(`frame ${chunk.batchId}: chunk ${chunk.chunkIndex} of ${chunk.chunkCount} is malformed`);
    }
    if (chunk.chunkIndex === 0) {
      if (this.first !== undefined) throw new InvalidArgumentError(`frame ${chunk.batchId} started before frame ${this.first.batchId} ended`);
      this.first = chunk;
      this.pieces = [];
      this.bytes = 0;
    } else {
      const f = this.first;
      if (f === undefined || f.batchId !== chunk.batchId || f.planEpoch !== chunk.planEpoch || f.chunkCount !== chunk.chunkCount || chunk.chunkIndex !== this.pieces.length) {
        this.first = undefined;
        throw new InvalidArgumentError(`frame ${chunk.batchId}: chunk ${chunk.chunkIndex} arrived out of order`);
      }
    }
    const tensor = this.tensorOf(chunk);
    if (tensor !== null) {
      this.bytes += tensor.data.byteLength;
      if (this.bytes > this.maxTensorBytes) {
        this.first = undefined;
        this.pieces = [];
        throw new InvalidArgumentError(`frame ${chunk.batchId}: chunks add up to more than ${this.maxTensorBytes} bytes`);
      }
      this.pieces.push(tensor.data);
    }
    else if (chunk.chunkCount > 1) throw new InvalidArgumentError(`frame ${chunk.batchId}: chunk ${chunk.chunkIndex} has no data`);
    if (chunk.chunkIndex + 1 < chunk.chunkCount) return undefined;
    const frame = this.first!;
    this.first = undefined;
    const head = this.tensorOf(frame);
    if (head === null) return { frame, tensor: null };
    return { frame, tensor: { dtype: head.dtype, shape: head.shape, data: this.pieces.length === 1 ? this.pieces[0] : Buffer.concat(this.pieces) } };
  }
}

export function decodeStageFrame(frame: ActivationFrame, tensor: WireTensor | null, hiddenSize: number): StageFrame {
  const slices = frame.slices.map(sliceFromWire);
  const tokens = slices.reduce((n, s) => n + s.tokenCount, 0);
  const hidden = tensor === null ? undefined : decodeF32(tensor, `frame ${frame.batchId} hidden`, [tokens, hiddenSize]);
  const error = frame.error === '' ? undefined : { message: frame.error, code: frame.code };
  if (frame.prefixEvicted.some((k) => k.length === 0 || k.length > MAX_PREFIX_KEY_CHARS)) throw new InvalidArgumentError(`frame ${frame.batchId}: a prefix_evicted key is empty or longer than ${MAX_PREFIX_KEY_CHARS}`);
  const prefixEvicted = frame.prefixEvicted.length === 0 ? {} : { prefixEvicted: frame.prefixEvicted };
  return { planEpoch: frame.planEpoch, batchId: frame.batchId, stageIndex: frame.stageIndex, slices, hidden, error, etcdOutage: frame.etcdOutage, ...prefixEvicted, ...(frame.embed ? { embed: true } : {}) };
}

/** `hiddenSize`: the width of an embedding micro-batch's rows (refused when not given). */
export function decodeResult(frame: ResultFrame, tensor: WireTensor | null, vocabSize: number, hiddenSize?: number): ResultBatch {
  const slices = frame.slices.map(sliceFromWire);
  if (frame.embed && hiddenSize === undefined) throw new InvalidArgumentError(`result ${frame.batchId}: an embedding result where none was asked for`);
  const width = frame.embed ? hiddenSize! : vocabSize;
  const logits = tensor === null ? undefined : decodeF32(tensor, `result ${frame.batchId} ${frame.embed ? 'pooled hidden states' : 'logits'}`, [slices.length, width]);
  const error = frame.error === '' ? undefined : { message: frame.error, code: frame.code };
  return { planEpoch: frame.planEpoch, batchId: frame.batchId, slices, logits, error, ...(frame.embed ? { embed: true } : {}) };
}
