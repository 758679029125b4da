/**
 * The main thread's side of an engine thread: a worker_thread that loads stages and expert sets
 * and runs their compute (native kernels or onnxruntime, both of which block the calling thread),
 * and typed async proxies for what it holds.
 */
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { ExpertBackend, ExpertCall } from '../common/engine/experts';
import type { ComputeSettings } from '../common/engine/compute-settings';
import type { StageInput } from '../common/engine/stage-engine';
import { UnavailableError } from '../common/errors';
import type { LayerRange, SequenceId } from '../common/ids';
import type { ModelConfig } from '../common/model/config';
import { fromThreadError } from '../common/pool/thread-errors';
import type { TransportSpec } from '../common/security/node-security';
import type { EngineReply, EngineReplyValue, EngineRequest, EngineThreadData, ExpertHolding, RemoteExpertsSpec, SequenceSnapshot, WeightSourceSpec } from './engine-protocol';
import type { ExpertDispatchStats } from './expert-stats';
import type { ForwardContext, StageResult } from './prefix-stage';
import type { StageBackend, StageStats } from './stage-backend';

type ValueOf<O extends EngineReplyValue['op']> = Extract<EngineReplyValue, { op: O }>;

export interface EngineThreadHooks {
  /** Expert dispatch figures of a stage with its experts spread, with each forward reply. */
  onExpertStats?(stats: ExpertDispatchStats): void;
}

export class EngineThread {
  private readonly worker: Worker;
  private readonly pending = new Map<number, { resolve(v: EngineReplyValue): void; reject(e: Error): void }>();
  private nextId = 1;
  private dead: Error | undefined;
  /** Stages and expert sets loaded here and not closed yet. */
  openHandles = 0;

  /** `transport`: how the thread dials the coordinator (weights) and other workers (experts). */
  constructor(
    readonly hooks: EngineThreadHooks = {},
    transport: TransportSpec = { kind: 'insecure' },
  ) {
    const workerData: EngineThreadData = { transport };
    this.worker = new Worker(join(__dirname, 'engine-thread-main.js'), { workerData });
    this.worker.on('message', (reply: EngineReply) => {
      const p = this.pending.get(reply.id);
      if (p === undefined) return;
      this.pending.delete(reply.id);
      if (reply.ok) p.resolve(reply.value);
      else p.reject(fromThreadError(reply.error));
    });
    const die = (err: Error): void => {
      this.dead = err;
      for (const p of this.pending.values()) p.reject(new UnavailableError(`engine thread stopped: ${err.message}`, { cause: err }));
      this.pending.clear();
    };
    this.worker.on('error', die);
    this.worker.on('exit', (code) => die(new Error(`exited with code ${code}`)));
  }

  call<O extends EngineRequest['op']>(request: Extract<EngineRequest, { op: O }>, transfer: ArrayBuffer[] = []): Promise<ValueOf<O>> {
    if (this.dead !== undefined) return Promise.reject(new UnavailableError(`engine thread stopped: ${this.dead.message}`));
    const id = this.nextId++;
    return new Promise<EngineReplyValue>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, request }, transfer);
    }) as Promise<ValueOf<O>>;
  }

  /**
   * Loads layers [start, end); with `experts`, the stage runs its experts on the workers the table
   * names; with `prefixCacheBytes` > 0, it keeps a prefix cache (prefix-stage.ts).
   */
  async loadStage(source: WeightSourceSpec, range: LayerRange, compute: ComputeSettings, experts?: RemoteExpertsSpec, prefixCacheBytes = 0): Promise<{ stage: ThreadedStage; loadSeconds: number }> {
    const reply = await this.call<'loadStage'>({ op: 'loadStage', source, range, compute, prefixCacheBytes, ...(experts === undefined ? {} : { experts }) });
    this.openHandles++;
    return { stage: new ThreadedStage(this, reply.stage, reply.config, range), loadSeconds: reply.loadSeconds };
  }

  async loadExperts(source: WeightSourceSpec, holdings: readonly ExpertHolding[], compute: ComputeSettings): Promise<{ experts: ThreadedExperts; loadSeconds: number }> {
    const reply = await this.call<'loadExperts'>({ op: 'loadExperts', source, holdings, compute });
    this.openHandles++;
    return { experts: new ThreadedExperts(this, reply.experts, holdings), loadSeconds: reply.loadSeconds };
  }

  async terminate(): Promise<void> {
    await this.worker.terminate();
  }
}

export class ThreadedStage implements StageBackend {
  private latest: StageStats = { sequenceCount: 0, kvCacheBytes: 0 };

  constructor(
    private readonly thread: EngineThread,
    private readonly handle: number,
    readonly config: ModelConfig,
    readonly range: LayerRange,
  ) {}

  get isFirst(): boolean {
    return this.range.start === 0;
  }

  get stats(): StageStats {
    return this.latest;
  }

  async forward(input: StageInput, context?: ForwardContext): Promise<StageResult> {
    const reply = await this.thread.call<'forward'>({ op: 'forward', stage: this.handle, input, ...(context === undefined ? {} : { context }) });
    this.latest = reply.stats;
    if (reply.experts !== undefined) this.thread.hooks.onExpertStats?.(reply.experts);
    return reply.output;
  }

  /** A new plan's expert placement for a stage loaded with its experts spread. */
  async setExperts(experts: RemoteExpertsSpec): Promise<void> {
    await this.thread.call<'setExperts'>({ op: 'setExperts', stage: this.handle, experts });
  }

  async release(ids: readonly SequenceId[]): Promise<number> {
    const reply = await this.thread.call<'release'>({ op: 'release', stage: this.handle, ids });
    this.latest = reply.stats;
    return reply.released;
  }

  /** Frees every cache (a new plan replays every sequence from position 0). */
  async releaseAll(): Promise<number> {
    const reply = await this.thread.call<'release'>({ op: 'release', stage: this.handle, ids: 'all' });
    this.latest = reply.stats;
    return reply.released;
  }

  async positions(ids: readonly SequenceId[]): Promise<(number | undefined)[]> {
    return (await this.thread.call<'positions'>({ op: 'positions', stage: this.handle, ids })).positions;
  }

  async snapshotKv(ids: readonly SequenceId[], layers: LayerRange): Promise<SequenceSnapshot[]> {
    return (await this.thread.call<'snapshotKv'>({ op: 'snapshotKv', stage: this.handle, ids, layers })).entries;
  }

  async restoreKv(entries: readonly SequenceSnapshot[]): Promise<void> {
    this.latest = (await this.thread.call<'restoreKv'>({ op: 'restoreKv', stage: this.handle, entries })).stats;
  }

  async retain(ids: readonly SequenceId[]): Promise<number> {
    const reply = await this.thread.call<'retain'>({ op: 'retain', stage: this.handle, ids });
    this.latest = reply.stats;
    return reply.released;
  }

  async close(): Promise<void> {
    await this.thread.call<'close'>({ op: 'close', handle: this.handle }).catch(() => undefined);
    this.thread.openHandles--;
  }
}

export class ThreadedExperts implements ExpertBackend {
  constructor(
    private readonly thread: EngineThread,
    /** The set's handle on the engine thread (a RemoteExpertsSpec's `self.experts`). */
    readonly handle: number,
    readonly holdings: readonly ExpertHolding[],
  ) {}

  holds(layer: number, expert: number): boolean {
    return this.holdings.some((h) => h.layer === layer && h.experts.includes(expert));
  }

  async run(layer: number, calls: readonly ExpertCall[]): Promise<Float32Array[]> {
    return (await this.thread.call<'runExperts'>({ op: 'runExperts', experts: this.handle, layer, calls })).outputs;
  }

  async close(): Promise<void> {
    await this.thread.call<'close'>({ op: 'close', handle: this.handle }).catch(() => undefined);
    this.thread.openHandles--;
  }
}
