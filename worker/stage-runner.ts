/**
 * Runs one stage's engine over the micro-batches that arrive for it, strictly in arrival order,
 * one engine call at a time. Frames queued while the engine was busy are merged into one call
 * (their slices and hidden states concatenated) when they share no sequence, so a stage with
 * many small micro-batches waiting still makes one large matrix product. Results go on to the
 * next stage or, from the last stage, to the coordinator.
 */
import { status as Status } from '@grpc/grpc-js';
import type { StageOutput } from '../common/engine/stage-engine';
import type { StageResult } from './prefix-stage';
import { asBoraError } from '../common/errors';
import type { LayerRange } from '../common/ids';
import type { FrameError, ResultBatch, StageFrame } from '../common/wire/frames';
import { STATUS_BY_CODE } from '../common/wire/grpc-status';
import type { StageBackend } from './stage-backend';
import type { IdleSequences } from './idle-sequences';

export interface StageAssignment {
  readonly epoch: number;
  readonly stageIndex: number;
  readonly stageCount: number;
  readonly range: LayerRange;
}

/** Where a stage's output goes: the next stage, or the coordinator's results stream. */
export type StageSink =
  | { readonly kind: 'next'; send(frame: StageFrame): Promise<void> }
  | { readonly kind: 'results'; publish(result: ResultBatch): void };

export interface StageRunnerHooks {
  onForward?(seconds: number, tokens: number): void;
  /** Sequences whose caches were freed after no frame for the idle limit (idle-sequences.ts). */
  onIdleReleased?(count: number): void;
  onQueueDepth?(depth: number): void;
  onSendFailed?(err: Error): void;
}

/** Merge at most this many tokens into one engine call (bounds activation memory). */
export const MAX_MERGED_TOKENS = 4096;

export class StageRunner {
  private readonly queue: StageFrame[] = [];
  private running = false;
  private closed = false;
  private belowWaiters: { depth: number; resolve(): void }[] = [];
  private readonly sweepTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly assignment: StageAssignment,
    readonly stage: StageBackend,
    private readonly sink: StageSink,
    private readonly hooks: StageRunnerHooks = {},
    /** Frees the caches of sequences no frame touched for its limit; none when absent. */
    private readonly idle?: IdleSequences,
  ) {
    if (idle !== undefined) {
      this.sweepTimer = setInterval(() => void this.releaseIdle(), Math.min(5_000, Math.max(10, idle.idleLimitMs / 4)));
      this.sweepTimer.unref();
    }
  }

  /** Frees the caches of the sequences idle past the limit; resolves with how many went. */
  async releaseIdle(): Promise<number> {
    const ids = this.idle?.takeIdle() ?? [];
    if (ids.length === 0 || this.closed) return 0;
    const released = await this.stage.release(ids).catch(() => 0); // the stage may be closing
    if (released > 0) this.hooks.onIdleReleased?.(released);
    return released;
  }

  get queueDepth(): number {
    return this.queue.length;
  }

  /** Resolves once fewer than `depth` frames are queued (or the runner closed). */
  whenBelow(depth: number): Promise<void> {
    if (this.queue.length < depth || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.belowWaiters.push({ depth, resolve }));
  }

  private notifyDepth(): void {
    this.hooks.onQueueDepth?.(this.queue.length);
    const ready = this.belowWaiters.filter((w) => this.queue.length < w.depth || this.closed);
    this.belowWaiters = this.belowWaiters.filter((w) => !ready.includes(w));
    for (const w of ready) w.resolve();
  }

  /** Queues a frame the caller has already checked for epoch and stage index. */
  enqueue(frame: StageFrame): void {
    this.queue.push(frame);
    this.notifyDepth();
    if (!this.running) void this.drain();
  }

  close(): void {
    clearInterval(this.sweepTimer);
    this.closed = true;
    this.queue.length = 0;
    this.notifyDepth();
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      while (this.queue.length > 0 && !this.closed) {
        const group = this.takeMergeable();
        this.notifyDepth();
        try {
          await this.process(group);
        } catch (err) {
          // Only sending on can fail here (compute errors travel on as error frames). The frames
          // are lost with the stream; the coordinator times them out and replays.
          this.hooks.onSendFailed?.(err as Error);
        }
      }
    } finally {
      this.running = false;
    }
  }

  /** The first queued frame plus following ones that can share its engine call. */
  private takeMergeable(): StageFrame[] {
    return this.queue.splice(0, mergeableCount(this.queue));
  }

  private async process(group: readonly StageFrame[]): Promise<void> {
    if (group.length === 1 && group[0].error !== undefined) {
      await this.emit(group[0], undefined, group[0].error);
      return;
    }
    const slices = group.flatMap((f) => f.slices);
    this.idle?.touch(slices.map((s) => s.id));
    const hidden = this.stage.isFirst ? undefined : concat(group.map((f) => f.hidden!));
    // The first stage's prefix evictions of these frames (prefix-stage.ts), applied here and passed on.
    const evicted = group.flatMap((f) => f.prefixEvicted ?? []);
    let output: StageResult;
    const started = process.hrtime.bigint();
    try {
      const embed = group[0].embed === true ? { embed: true } : {};
      output = await this.stage.forward({ slices, hidden }, { planEpoch: group[0].planEpoch, ...(evicted.length > 0 ? { evicted } : {}), ...embed });
    } catch (err) {
      const bora = asBoraError(err);
      const error = { message: `stage ${this.assignment.stageIndex} ${bora.message}`, code: STATUS_BY_CODE[bora.code] ?? Status.INTERNAL };
      for (const frame of group) await this.emit(frame, undefined, error);
      return;
    }
    // With a prefix cache the slices go on as computed: cached positions left out.
    const computed = withComputedSlices(group, output.slices);
    const passOn = [...evicted, ...(output.evicted ?? [])];
    this.hooks.onForward?.(Number(process.hrtime.bigint() - started) / 1e9, computed.reduce((n, f) => n + tokenCount(f), 0));
    const parts = splitOutput(computed, output, this.stage.config.hiddenSize, this.stage.config.vocabSize);
    for (let i = 0; i < computed.length; i++) await this.emit(i === 0 && passOn.length > 0 ? { ...computed[i], prefixEvicted: passOn } : { ...computed[i], prefixEvicted: undefined }, parts[i], undefined);
  }

  private async emit(frame: StageFrame, output: StageResult | undefined, error: FrameError | undefined): Promise<void> {
    if (this.closed) return;
    if (this.sink.kind === 'results') {
      // An embedding micro-batch returns its pooled states where logits would go (worker.proto).
      const rows = frame.embed === true ? output?.pooled : output?.logits;
      this.sink.publish({ planEpoch: frame.planEpoch, batchId: frame.batchId, slices: frame.slices, logits: rows?.slice(), error, ...(frame.embed === true ? { embed: true } : {}) });
      return;
    }
    // Slices pass on with their token ids: later stages key their prefix caches by them.
    const slices = frame.slices;
    await this.sink.send({
      planEpoch: frame.planEpoch,
      batchId: frame.batchId,
      stageIndex: frame.stageIndex + 1,
      slices,
      hidden: output?.hidden.slice(),
      error,
      etcdOutage: frame.etcdOutage,
      ...(frame.prefixEvicted === undefined ? {} : { prefixEvicted: frame.prefixEvicted }),
      ...(frame.embed === true ? { embed: true } : {}),
    });
  }
}

/**
 * How many of the queue's leading frames can share one engine call: the first, then each next one
 * while it carries no error, shares no sequence with those before it, and keeps the total within
 * `maxTokens` tokens. An error frame always goes alone. 0 for an empty queue.
 */
export function mergeableCount(queue: readonly StageFrame[], maxTokens = MAX_MERGED_TOKENS): number {
  if (queue.length === 0) return 0;
  const first = queue[0];
  if (first.error !== undefined) return 1;
  const ids = new Set(first.slices.map((s) => s.id));
  let tokens = tokenCount(first);
  let count = 1;
  while (count < queue.length) {
    const next = queue[count];
    if (next.error !== undefined || (next.embed === true) !== (first.embed === true) || next.slices.some((s) => ids.has(s.id)) || tokens + tokenCount(next) > maxTokens) break;
    next.slices.forEach((s) => ids.add(s.id));
    tokens += tokenCount(next);
    count++;
  }
  return count;
}

/**
 * Splits one engine call's output over the frames merged into it: each frame's rows of hidden
 * state (one per token) and of logits (one per slice), as views into the merged arrays.
 */
export function splitOutput(group: readonly StageFrame[], output: StageResult, hiddenSize: number, vocabSize: number): StageResult[] {
  let tokenOffset = 0;
  let sliceOffset = 0;
  return group.map((frame) => {
    const tokens = tokenCount(frame);
    const part: StageResult = {
      hidden: output.hidden.subarray(tokenOffset * hiddenSize, (tokenOffset + tokens) * hiddenSize),
      logits: output.logits?.subarray(sliceOffset * vocabSize, (sliceOffset + frame.slices.length) * vocabSize),
      pooled: output.pooled?.subarray(sliceOffset * hiddenSize, (sliceOffset + frame.slices.length) * hiddenSize),
    };
    tokenOffset += tokens;
    sliceOffset += frame.slices.length;
    return part;
  });
}

/** The frames with the slices the stage computed (same count per frame, in order), when it says. */
function withComputedSlices(group: readonly StageFrame[], computed: StageResult['slices']): StageFrame[] {
  if (computed === undefined) return [...group];
  let offset = 0;
  return group.map((frame) => {
    const slices = computed.slice(offset, offset + frame.slices.length);
    offset += frame.slices.length;
    return { ...frame, slices };
  });
}

function tokenCount(frame: StageFrame): number {
  return frame.slices.reduce((n, s) => n + s.tokenCount, 0);
}

function concat(parts: readonly Float32Array[]): Float32Array {
  if (parts.length === 1) return parts[0];
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}
