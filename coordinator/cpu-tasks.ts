/**
 * The task side of CpuPool: the module piscina loads in each pool thread (compiled to
 * dist/coordinator/cpu-tasks.js). Its default export takes one CpuTask and answers a CpuReply;
 * it never throws, so the error's class survives the thread boundary (thread-errors.ts).
 *
 * Buffers: a task's input buffer arrives transferred (or as a private copy), so the thread may
 * reuse it; a Float32Array result goes back transferred, never copied.
 */
import { Piscina } from 'piscina';
import { InternalError, InvalidArgumentError } from '../common/errors';
import { bf16ToF32, DTYPE_BYTES, f16ToF32, type StorageDtype } from '../common/model/dtype';
import { sampleToken, type SamplingParams } from '../common/sampling/sampler';
import { loadModelTokenizer } from '../common/model/open-model';
import { type SpecialTokenIds, type Tokenizer } from '../common/tokenizer/tokenizer';
import { type ThreadError, toThreadError } from '../common/pool/thread-errors';

export type CpuTask =
  | { readonly kind: 'ping' }
  | {
      readonly kind: 'widen';
      /** Raw little-endian values of `dtype`; owned by this thread (transferred or copied). */
      readonly bytes: Uint8Array;
      readonly dtype: StorageDtype;
    }
  | {
      readonly kind: 'sample';
      readonly logits: Float32Array; // (rows, vocab)
      readonly rows: number;
      readonly params: readonly SamplingParams[]; // (rows,)
      readonly steps: readonly number[]; // (rows,)
    }
  | {
      readonly kind: 'encode';
      readonly modelDir: string;
      readonly text: string;
      readonly ids: SpecialTokenIds;
      readonly addBos: boolean;
    };

/** What each kind of task answers. */
export interface CpuTaskResults {
  readonly ping: 'pong';
  readonly widen: Float32Array; // (bytes / dtype width,)
  readonly sample: number[]; // (rows,)
  readonly encode: number[];
}

export type CpuReply<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: ThreadError };

/** Tokenizers of this thread, by model directory and special ids; loaded once, on first use. */
const tokenizers = new Map<string, Promise<Tokenizer>>();

export default async function runCpuTask(task: CpuTask): Promise<unknown> {
  try {
    switch (task.kind) {
      case 'ping':
        return reply<'ping'>('pong');
      case 'widen': {
        const values = widen(task.bytes, task.dtype);
        // Hand the result's buffer back instead of cloning it; piscina unwraps the envelope.
        return Piscina.move(movable(reply<'widen'>(values), values.buffer as ArrayBuffer));
      }
      case 'sample':
        return reply<'sample'>(sampleRows(task.logits, task.rows, task.params, task.steps));
      case 'encode': {
        const tokenizer = await tokenizerFor(task.modelDir, task.ids);
        return reply<'encode'>(tokenizer.encode(task.text, { addBos: task.addBos }));
      }
      default: {
        const unknown: never = task;
        throw new InternalError(`unknown CPU task ${JSON.stringify((unknown as { kind: unknown }).kind)}`);
      }
    }
  } catch (err) {
    const failed: CpuReply<never> = { ok: false, error: toThreadError(err) };
    return failed;
  }
}

function reply<K extends keyof CpuTaskResults>(value: CpuTaskResults[K]): CpuReply<CpuTaskResults[K]> {
  return { ok: true, value };
}

/** piscina's Transferable protocol: post `value`, transferring `buffer` with it. */
function movable(value: object, buffer: ArrayBuffer): Parameters<typeof Piscina.move>[0] {
  return { [Piscina.transferableSymbol]: buffer, [Piscina.valueSymbol]: value } as unknown as Parameters<
    typeof Piscina.move
  >[0];
}

/**
 * Raw bytes -> float32, with the same arithmetic as toFloat32 in model/dtype.ts. `bytes` spans
 * a buffer this thread owns, so float32 input is reinterpreted in place rather than copied;
 * only shared memory (still the caller's) or a misaligned view is copied first.
 */
function widen(bytes: Uint8Array, dtype: StorageDtype): Float32Array {
  const width = DTYPE_BYTES[dtype];
  if (bytes.byteLength % width !== 0) {
    throw new InvalidArgumentError(`${bytes.byteLength} bytes is not a whole number of ${dtype} values`);
  }
  const count = bytes.byteLength / width;
  switch (dtype) {
    case 'F32': {
      const own = bytes.buffer instanceof ArrayBuffer && bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
      return new Float32Array(own.buffer, own.byteOffset, count);
    }
    case 'BF16':
    case 'F16': {
      const aligned = bytes.byteOffset % 2 === 0 ? bytes : bytes.slice();
      const halves = new Uint16Array(aligned.buffer, aligned.byteOffset, count);
      return dtype === 'BF16' ? bf16ToF32(halves) : f16ToF32(halves);
    }
  }
}

function sampleRows(
  logits: Float32Array,
  rows: number,
  params: readonly SamplingParams[],
  steps: readonly number[],
): number[] {
  const vocab = logits.length / rows;
  const tokens: number[] = [];
  for (let r = 0; r < rows; r++) {
    tokens.push(sampleToken(logits.subarray(r * vocab, (r + 1) * vocab), params[r], steps[r]));
  }
  return tokens;
}

function tokenizerFor(modelDir: string, ids: SpecialTokenIds): Promise<Tokenizer> {
  const key = `${ids.bosTokenId}:${ids.eosTokenId}:${modelDir}`;
  let loading = tokenizers.get(key);
  if (loading === undefined) {
    loading = loadModelTokenizer(modelDir, ids);
    tokenizers.set(key, loading);
    // A failed load is not cached: the directory may be fixed and the call retried.
    loading.catch(() => tokenizers.delete(key));
  }
  return loading;
}
