/**
 * The coordinator's worker threads (piscina) for CPU work that must not block the event loop: a
 * coordinator whose loop stalls for seconds stalls every stream and misses its etcd keepalives. Widening
 * checkpoint tensors, sampling and tokenizing run here; the results are the same values the
 * in-thread functions (toFloat32, sampleToken, Tokenizer.encode) give.
 *
 * Threads: one by default. The machine has 2 cores and the engine's threads use them,
 * so a larger pool only oversubscribes (RUNTIME-FACTS.md, "Threads on 2 cores").
 *
 * Data crossing the thread boundary:
 *  - widen() transfers its input instead of copying it when `bytes` spans a whole ArrayBuffer,
 *    which then is detached on this thread (the pool owns it). A view into a larger buffer (one
 *    tensor of a whole file read at once) has only its range copied, since transferring would
 *    detach the rest; shared memory is shared, not copied. The float32 result comes back
 *    transferred.
 *  - sample()/sampleBatch() copy the logits (the caller keeps them) and transfer that copy.
 *  - SamplingParams cross by structured clone, which carries a bigint seed exactly (all 64 bits).
 *  - A task's BoraError is rebuilt here with its class and fields (thread-errors.ts); a failure of
 *    the pool itself (a thread that died) is an InternalError.
 */
import { join } from 'node:path';
import { Piscina } from 'piscina';
import { FailedPreconditionError, InternalError, InvalidArgumentError } from '../common/errors';
import { DTYPE_BYTES, isStorageDtype, type StorageDtype } from '../common/model/dtype';
import type { SamplingParams } from '../common/sampling/sampler';
import type { SpecialTokenIds } from '../common/tokenizer/tokenizer';
import type { CpuReply, CpuTask, CpuTaskResults } from './cpu-tasks';
import { fromThreadError } from '../common/pool/thread-errors';

export const DEFAULT_CPU_POOL_THREADS = 1;

/** The compiled task module, next to this one in dist/. */
export const CPU_TASKS_FILE = join(__dirname, 'cpu-tasks.js');

export interface CpuPoolOptions {
  readonly threads?: number;
}

export class CpuPool {
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly piscina: Piscina<CpuTask, unknown>,
    readonly threads: number,
  ) {}

  /** Starts the threads and waits until each has loaded the task module. */
  static async create(options: CpuPoolOptions = {}): Promise<CpuPool> {
    const threads = options.threads ?? DEFAULT_CPU_POOL_THREADS;
    if (!Number.isSafeInteger(threads) || threads < 1) {
      throw new InvalidArgumentError(`a CPU pool needs an integer >= 1 threads, got ${threads}`);
    }
    const piscina = new Piscina<CpuTask, unknown>({ filename: CPU_TASKS_FILE, minThreads: threads, maxThreads: threads });
    const pool = new CpuPool(piscina, threads);
    try {
      await Promise.all(Array.from({ length: threads }, () => pool.run('ping', { kind: 'ping' })));
    } catch (err) {
      await pool.close();
      throw err;
    }
    return pool;
  }

  /** Tasks waiting for a free thread. */
  get queuedTasks(): number {
    return this.piscina.queueSize;
  }

  /**
   * Raw little-endian `dtype` values -> float32 (exact widening). Detaches `bytes` when it spans
   * its whole ArrayBuffer (see the module comment).
   */
  async widen(bytes: Uint8Array, dtype: StorageDtype): Promise<Float32Array> {
    if (!isStorageDtype(dtype)) throw new InvalidArgumentError(`unknown storage dtype ${String(dtype)}`);
    if (bytes.byteLength % DTYPE_BYTES[dtype] !== 0) {
      throw new InvalidArgumentError(`${bytes.byteLength} bytes is not a whole number of ${dtype} values`);
    }
    const { view, transferList } = handOver(bytes);
    return this.run('widen', { kind: 'widen', bytes: view, dtype }, transferList);
  }

  /** sampleToken(logits, params, step) on a pool thread; logits is (vocab,). */
  async sample(logits: Float32Array, params: SamplingParams, step: number): Promise<number> {
    const [token] = await this.sampleBatch(logits, 1, [params], [step]);
    return token;
  }

  /** sampleToken for each row r of logits (rows, vocab), with params[r] and steps[r]; one thread hop. */
  async sampleBatch(
    logits: Float32Array,
    rows: number,
    params: readonly SamplingParams[],
    steps: readonly number[],
  ): Promise<number[]> {
    if (!Number.isSafeInteger(rows) || rows < 1) {
      throw new InvalidArgumentError(`sampleBatch needs an integer >= 1 rows, got ${rows}`);
    }
    if (logits.length === 0 || logits.length % rows !== 0) {
      throw new InvalidArgumentError(`logits of length ${logits.length} do not split into ${rows} rows`);
    }
    if (params.length !== rows || steps.length !== rows) {
      throw new InvalidArgumentError(
        `sampleBatch of ${rows} rows got ${params.length} sampling params and ${steps.length} steps`,
      );
    }
    const copy = logits.slice(); // (rows, vocab); the caller keeps its logits
    return this.run('sample', { kind: 'sample', logits: copy, rows, params, steps }, [copy.buffer]);
  }

  /**
   * The model directory's tokenizer encode(text) (BOS added unless addBos is false). Each thread
   * loads a directory's tokenizer once and keeps it.
   */
  async encode(
    modelDir: string,
    text: string,
    ids: SpecialTokenIds,
    options: { addBos?: boolean } = {},
  ): Promise<number[]> {
    const task: CpuTask = {
      kind: 'encode',
      modelDir,
      text,
      ids: { bosTokenId: ids.bosTokenId, eosTokenId: ids.eosTokenId },
      addBos: options.addBos ?? true,
    };
    return this.run('encode', task);
  }

  /** Lets queued and running tasks finish, then stops the threads. Later calls are refused. */
  close(): Promise<void> {
    this.closing ??= this.piscina.close();
    return this.closing;
  }

  private async run<K extends CpuTask['kind']>(
    kind: K,
    task: Extract<CpuTask, { kind: K }>,
    transferList: ArrayBuffer[] = [],
  ): Promise<CpuTaskResults[K]> {
    if (this.closing !== undefined) throw new FailedPreconditionError(`the CPU pool is closed (task ${kind})`);
    let reply: CpuReply<CpuTaskResults[K]>;
    try {
      reply = (await this.piscina.run(task, { transferList })) as CpuReply<CpuTaskResults[K]>;
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      throw new InternalError(`CPU pool task ${kind} failed in the pool itself: ${why}`, { cause: err });
    }
    if (!reply.ok) throw fromThreadError(reply.error);
    return reply.value;
  }
}

/**
 * What to post for `bytes`, and what to transfer with it: the view itself when it spans its
 * own ArrayBuffer (moved, no copy), the view as is over shared memory (shared, no copy), or else
 * a copy of its range (posting the view would clone the whole underlying buffer).
 */
function handOver(bytes: Uint8Array): { view: Uint8Array; transferList: ArrayBuffer[] } {
  const buffer = bytes.buffer;
  if (!(buffer instanceof ArrayBuffer)) return { view: bytes, transferList: [] };
  if (bytes.byteOffset === 0 && bytes.byteLength === buffer.byteLength) return { view: bytes, transferList: [buffer] };
  const copy = bytes.slice();
  return { view: copy, transferList: [copy.buffer] };
}
