/**
 * Continuous batching over a Pipeline. Sequences join and leave at any step; ready sequences are
 * grouped into micro-batches, and up to `pipeline.depth` micro-batches are in flight at once so
 * that every stage of a pipeline has work. Long prompts are fed in chunks (a token budget per
 * micro-batch) so one long prefill cannot stall everyone's decoding.
 *
 * Resume after failure: a sequence is nothing but its tokens (prompt + generated so far) and its
 * sampling parameters, and sampling at step n is a pure function of (seed, n). When the pipeline
 * breaks, every sequence is marked for replay (nothing fed), and on the next pipeline its tokens
 * are fed again from position 0 to rebuild the KV caches; the next token is then sampled exactly
 * as it would have been. The consumer sees a pause, never a lost or repeated token.
 */
import { BoraError, UnavailableError, asBoraError } from '../errors';
import type { SequenceId } from '../ids';
import type { SliceInput } from '../engine/stage-engine';
import { sampleToken, type SamplingParams } from '../sampling/sampler';
import { meanL2 } from '../engine/pooling';
import type { Pipeline } from './pipeline';

/** Releases kept for a later pipeline at most (beyond this, the caches are lost with their stages). */
const MAX_PENDING_RELEASES = 65_536;

export interface SequenceSink {
  /** A new token (index = how many came before it) and the logits that chose it. Return true to stop. */
  onToken(token: number, index: number, logits: Float32Array): boolean;
  /** The sequence cannot continue. */
  onError(err: BoraError): void;
  /** The pipeline broke and the sequence is being rebuilt on a new one. */
  onResume?(): void;
}

export interface SequenceRequest {
  readonly id: SequenceId;
  /** The client request (for the stages' log lines), sent with the slice that opens the sequence. */
  readonly requestId?: string;
  readonly promptIds: readonly number[];
  readonly sampling: SamplingParams;
  readonly sink: SequenceSink;
}

/** Supplies pipelines: the current one, and the next one after a failure. */
export interface PipelineSource {
  current(): Pipeline | undefined;
  /**
   * Resolves with the pipeline that replaces a failed one of `afterEpoch` (the first, when
   * undefined): a later epoch's, or the same plan's data path reopened.
   */
  next(afterEpoch: number | undefined): Promise<Pipeline>;
  /** Reports that `pipeline` failed (so the source can re-plan). */
  reportFailure?(pipeline: Pipeline, err: BoraError): void;
}

export interface SchedulerOptions {
  /** Most new tokens in one micro-batch (prefill chunking). */
  readonly maxBatchTokens: number;
  /** Most sequences in one micro-batch. */
  readonly maxBatchSequences: number;
  /** Sampling over the vocabulary; default in this thread. A pool keeps the event loop free. */
  readonly sample?: (logits: Float32Array, params: SamplingParams, step: number) => Promise<number> | number;
  /** A sequence's first micro-batch started, `seconds` after it was submitted. */
  readonly onQueueWait?: (seconds: number) => void;
  /**
   * Generation runs again after a pipeline failure: a micro-batch of the next pipeline returned,
   * `seconds` after the failure was reported.
   */
  readonly onRecovered?: (seconds: number) => void;
  /** Milliseconds on a monotonic clock; performance.now() by default. */
  readonly nowMs?: () => number;
}

/** An embedding request: its prompt runs through the pipeline (prefill only) and is pooled. */
export interface EmbeddingRequest {
  readonly id: SequenceId;
  readonly promptIds: readonly number[];
  /** The mean-pooled, L2-normalised final-normed hidden state (common/engine/pooling.ts). */
  onEmbedding(vector: Float32Array): void;
  onError(err: BoraError): void;
}

interface Sequence {
  readonly request: SequenceRequest;
  /** An embedding: the running sum of its pooled rows (float64), and where the vector goes. */
  readonly embedding?: { sum: Float64Array | undefined; readonly request: EmbeddingRequest };
  /** Prompt then generated tokens. */
  readonly tokens: number[];
  readonly promptLength: number;
  /** Tokens whose keys/values the current pipeline holds. */
  fed: number;
  inFlight: boolean;
  done: boolean;
  lastScheduled: number;
  /** When it was submitted; undefined once its first micro-batch started. */
  queuedAtMs: number | undefined;
}

export interface SequenceHandle {
  cancel(): void;
}

export class Scheduler {
  private readonly sequences = new Map<SequenceId, Sequence>();
  private pipeline: Pipeline | undefined;
  private inFlight = 0;
  private nextBatchId = 1;
  private tick = 0;
  private waitingForPipeline = false;
  /** Set while a planned hand-over holds new micro-batches back (see quiesce). */
  private hold: { resolve(positions: Map<SequenceId, number> | undefined): void } | undefined;
  private readonly releaseQueue: SequenceId[] = [];
  /** When the serving pipeline failed, until a micro-batch of the next one returns. */
  private failedAtMs: number | undefined;

  constructor(
    private readonly source: PipelineSource,
    private readonly options: SchedulerOptions,
  ) {}

  get activeSequences(): number {
    return this.sequences.size;
  }

  /** Sequences accepted but not yet (or, after a re-plan, not again) part of any micro-batch. */
  get waitingSequences(): number {
    let waiting = 0;
    for (const s of this.sequences.values()) if (s.fed === 0 && !s.inFlight && !s.done) waiting++;
    return waiting;
  }

  submit(request: SequenceRequest): SequenceHandle {
    return this.enqueue(request, undefined);
  }

  /**
   * Queues an embedding. It is batched with other embeddings (never in a micro-batch with
   * generation: its last stage returns pooled states, not logits), prompt chunks as for
   * generation, and replayed like any sequence when the pipeline breaks.
   */
  submitEmbedding(request: EmbeddingRequest): SequenceHandle {
    if (this.sequences.has(request.id)) throw new UnavailableError(`sequence ${request.id} already running`);
    const sink: SequenceSink = { onToken: () => true, onError: (err) => request.onError(err) };
    return this.enqueue({ id: request.id, promptIds: request.promptIds, sampling: { kind: 'greedy' }, sink }, { sum: undefined, request });
  }

  private enqueue(request: SequenceRequest, embedding: Sequence['embedding']): SequenceHandle {
    if (this.sequences.has(request.id)) throw new UnavailableError(`sequence ${request.id} already running`);
    const seq: Sequence = {
      request,
      ...(embedding === undefined ? {} : { embedding }),
      tokens: [...request.promptIds],
      promptLength: request.promptIds.length,
      fed: 0,
      inFlight: false,
      done: false,
      lastScheduled: 0,
      queuedAtMs: this.nowMs(),
    };
    this.sequences.set(request.id, seq);
    this.pump();
    return { cancel: () => this.finish(seq) };
  }

  private finish(seq: Sequence): void {
    if (seq.done) return;
    seq.done = true;
    this.sequences.delete(seq.request.id);
    this.releaseQueue.push(seq.request.id);
    if (!seq.inFlight) this.flushReleases();
  }

  /**
   * Frees finished sequences' caches on every stage. A release that fails (the pipeline broke)
   * is kept for the next pipeline: stages that survive a re-plan keep their engines, and with
   * them the caches of sequences that ended just before it.
   */
  private flushReleases(): void {
    const pipeline = this.pipeline;
    if (pipeline === undefined || this.releaseQueue.length === 0) return;
    const ids = this.releaseQueue.splice(0);
    pipeline.release(ids).catch(() => {
      if (this.releaseQueue.length < MAX_PENDING_RELEASES) this.releaseQueue.push(...ids);
    });
  }

  /**
   * A planned hand-over: starts no new micro-batch and resolves, once none is in flight, with the
   * next position of every sequence that has caches on the stages; undefined when the pipeline
   * failed meanwhile (its sequences are then replayed as after any failure). Generation goes on
   * at switchTo() or resume().
   */
  quiesce(): Promise<Map<SequenceId, number> | undefined> {
    this.releaseHold();
    return new Promise((resolve) => {
      this.hold = { resolve };
      this.settleHold();
    });
  }

  /** Lets generation go on after quiesce() without a new pipeline. */
  resume(): void {
    this.releaseHold();
    this.pump();
  }

  /** Ends a hold; a quiesce() still waiting learns it will not get positions. */
  private releaseHold(): void {
    this.hold?.resolve(undefined);
    this.hold = undefined;
  }

  private settleHold(): void {
    if (this.hold === undefined || this.inFlight > 0 || [...this.sequences.values()].some((s) => s.inFlight)) return;
    const positions = new Map<SequenceId, number>();
    for (const [id, s] of this.sequences) if (s.fed > 0 && !s.done) positions.set(id, s.fed);
    const { resolve } = this.hold;
    this.hold = { resolve: () => undefined }; // still holding, answered
    resolve(this.pipeline === undefined ? undefined : positions);
  }

  private nowMs(): number {
    return this.options.nowMs?.() ?? performance.now();
  }

  /** Starts as many micro-batches as there are free pipeline slots and ready sequences. */
  private pump(): void {
    if (this.hold !== undefined) return;
    if (this.pipeline === undefined) this.pipeline = this.source.current();
    const pipeline = this.pipeline;
    if (pipeline === undefined) {
      this.awaitPipeline(undefined);
      return;
    }
    while (this.inFlight < pipeline.depth) {
      const ready = [...this.sequences.values()].filter((s) => !s.inFlight && !s.done);
      if (ready.length === 0) return;
      const share = Math.ceil(ready.length / (pipeline.depth - this.inFlight));
      const batch = this.pick(ready, Math.min(share, this.options.maxBatchSequences));
      void this.launch(pipeline, batch);
    }
  }

  /** Up to `count` sequences, least recently scheduled first, within the token budget. */
  private pick(ready: Sequence[], count: number): { seq: Sequence; slice: SliceInput }[] {
    ready.sort((a, b) => a.lastScheduled - b.lastScheduled);
    const picked: { seq: Sequence; slice: SliceInput }[] = [];
    let budget = this.options.maxBatchTokens;
    // One kind per micro-batch: the least recently scheduled sequence's (generation or embedding).
    const embedding = ready.length > 0 && ready[0].embedding !== undefined;
    for (const seq of ready) {
      if (picked.length >= count || budget <= 0) break;
      if ((seq.embedding !== undefined) !== embedding) continue;
      const tokenCount = Math.min(seq.tokens.length - seq.fed, budget);
      if (tokenCount <= 0) continue; // nothing new to feed yet
      budget -= tokenCount;
      seq.inFlight = true;
      seq.lastScheduled = ++this.tick;
      if (seq.queuedAtMs !== undefined) {
        this.options.onQueueWait?.((this.nowMs() - seq.queuedAtMs) / 1000);
        seq.queuedAtMs = undefined;
      }
      const opens = seq.fed === 0 && seq.request.requestId !== undefined ? { requestId: seq.request.requestId } : {};
      picked.push({ seq, slice: { id: seq.request.id, startPosition: seq.fed, tokenCount, tokenIds: seq.tokens.slice(seq.fed, seq.fed + tokenCount), ...opens } });
    }
    return picked;
  }

  private async launch(pipeline: Pipeline, batch: { seq: Sequence; slice: SliceInput }[]): Promise<void> {
    this.inFlight++;
    let logits: Float32Array | undefined;
    let failure: BoraError | undefined;
    try {
      const slices = batch.map((b) => b.slice);
      if (batch[0]?.seq.embedding === undefined) logits = await pipeline.run(this.nextBatchId++, slices);
      else if (pipeline.embed === undefined) throw new BoraError('FAILED_PRECONDITION', 'this pipeline cannot compute embeddings');
      else logits = await pipeline.embed(this.nextBatchId++, slices);
    } catch (err) {
      failure = asBoraError(err);
    }
    // A micro-batch of a pipeline that has since been replaced: its sequences were reset for
    // replay when the pipeline was dropped, so its result must not touch them.
    if (pipeline !== this.pipeline) return;
    this.inFlight--;
    if (failure === undefined && this.failedAtMs !== undefined) {
      this.options.onRecovered?.((this.nowMs() - this.failedAtMs) / 1000);
      this.failedAtMs = undefined;
    }
    // Sequences stay in flight until their next token is appended (sampling may be async), so
    // that no other micro-batch picks them up in between.
    if (failure === undefined) await this.accept(batch, logits!);
    for (const { seq } of batch) seq.inFlight = false;
    if (failure !== undefined) {
      if (failure.retryable) this.onPipelineFailure(pipeline, failure);
      else for (const { seq } of batch) this.fail(seq, failure);
    }
    this.flushReleases();
    if (this.hold !== undefined) this.settleHold();
    else if (!this.waitingForPipeline) this.pump();
  }

  private async accept(batch: { seq: Sequence; slice: SliceInput }[], logits: Float32Array): Promise<void> {
    const vocab = logits.length / batch.length;
    await Promise.all(
      batch.map(async ({ seq, slice }, row) => {
        if (seq.done) return;
        if (seq.embedding !== undefined) {
          this.acceptPooled(seq, seq.embedding, slice, logits.subarray(row * vocab, (row + 1) * vocab));
          return;
        }
        seq.fed += slice.tokenCount;
        if (seq.fed < seq.tokens.length) return; // a prompt chunk, or a replay still catching up
        const rowLogits = logits.subarray(row * vocab, (row + 1) * vocab);
        const index = seq.tokens.length - seq.promptLength;
        const token = await (this.options.sample ?? sampleToken)(rowLogits, seq.request.sampling, index);
        if (seq.done) return;
        seq.tokens.push(token);
        let stop: boolean;
        try {
          stop = seq.request.sink.onToken(token, index, rowLogits);
        } catch (err) {
          this.fail(seq, asBoraError(err));
          return;
        }
        if (stop) this.finish(seq);
      }),
    );
  }

  /** An embedding's chunk came back: add its pooled rows; the last one completes the vector. */
  private acceptPooled(seq: Sequence, embedding: NonNullable<Sequence['embedding']>, slice: SliceInput, pooled: Float32Array): void {
    embedding.sum ??= new Float64Array(pooled.length);
    for (let i = 0; i < pooled.length; i++) embedding.sum[i] += pooled[i];
    seq.fed += slice.tokenCount;
    if (seq.fed < seq.tokens.length) return;
    const vector = meanL2(embedding.sum, seq.tokens.length);
    this.finish(seq);
    embedding.request.onEmbedding(vector);
  }

  private fail(seq: Sequence, err: BoraError): void {
    if (seq.done) return;
    this.finish(seq);
    seq.request.sink.onError(err);
  }

  /** The pipeline broke: every sequence will be replayed from position 0 on the next one. */
  private onPipelineFailure(pipeline: Pipeline, err: BoraError): void {
    if (pipeline !== this.pipeline) return; // already handled
    this.failedAtMs ??= this.nowMs();
    this.releaseHold();
    this.source.reportFailure?.(pipeline, err);
    this.pipeline = undefined;
    this.resetForReplay();
    this.awaitPipeline(pipeline.epoch);
  }

  /**
   * A newer pipeline is ready (a planned change, e.g. a worker joined): move every sequence onto
   * it by replay. Micro-batches still in flight on the old one are ignored when they return.
   * `keepPositions`: after a quiesce() whose caches the stages of `pipeline` now hold, the
   * sequences go on where they are, without replay.
   */
  switchTo(pipeline: Pipeline, keepPositions = false): void {
    this.releaseHold();
    if (pipeline === this.pipeline) {
      this.pump();
      return;
    }
    const hadPipeline = this.pipeline !== undefined;
    this.pipeline = pipeline;
    if (hadPipeline && !(keepPositions && this.inFlight === 0)) this.resetForReplay();
    this.pump();
  }

  private resetForReplay(): void {
    this.inFlight = 0;
    for (const seq of this.sequences.values()) {
      seq.fed = 0;
      if (seq.embedding !== undefined) seq.embedding.sum = undefined;
      seq.inFlight = false;
      seq.request.sink.onResume?.();
    }
  }

  private awaitPipeline(afterEpoch: number | undefined): void {
    if (this.waitingForPipeline) return;
    this.waitingForPipeline = true;
    this.source.next(afterEpoch).then(
      (next) => {
        this.waitingForPipeline = false;
        if (next !== this.pipeline && this.pipeline !== undefined) this.switchTo(next);
        else {
          this.pipeline = next;
          this.pump();
        }
      },
      (err: unknown) => {
        this.waitingForPipeline = false;
        for (const seq of [...this.sequences.values()]) this.fail(seq, asBoraError(err));
      },
    );
  }

  /** Stops every sequence with `err` (shutdown). */
  abortAll(err: BoraError): void {
    for (const seq of [...this.sequences.values()]) this.fail(seq, err);
  }
}
