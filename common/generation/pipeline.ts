/**
 * What the scheduler drives: something that takes a micro-batch of sequence slices and returns
 * the logits of each slice's last token. In one process that is a chain of StageEngines; in the
 * cluster it is the coordinator's gRPC path through the stages.
 */
import type { SliceInput, StageEngine, StageOutput } from '../engine/stage-engine';
import type { SequenceId } from '../ids';

export interface Pipeline {
  /** The plan epoch this pipeline belongs to (0 in one process). */
  readonly epoch: number;
  /** How many micro-batches may be in flight at once (one per stage keeps every stage busy). */
  readonly depth: number;
  /** Runs one micro-batch; resolves to logits (slices, V). Rejects with a retryable error when the pipeline broke. */
  run(batchId: number, slices: readonly SliceInput[]): Promise<Float32Array>;
  /** Frees sequences' caches on every stage; best effort. */
  release(ids: readonly SequenceId[]): Promise<void>;
  /**
   * Runs one embedding micro-batch (prompt slices only); resolves to, per slice, the sum over its
   * tokens of the final-normed hidden state, (slices, H). Absent where the pipeline cannot pool.
   */
  embed?(batchId: number, slices: readonly SliceInput[]): Promise<Float32Array>;
}

/** Stages in this process, run one after the other. */
export class LocalPipeline implements Pipeline {
  readonly epoch = 0;
  readonly depth = 1;

  constructor(private readonly stages: readonly StageEngine[]) {}

  async run(_batchId: number, slices: readonly SliceInput[]): Promise<Float32Array> {
    let out: StageOutput | undefined;
    for (const stage of this.stages) out = await stage.forward({ slices, hidden: out?.hidden });
    return out!.logits!;
  }

  async release(ids: readonly SequenceId[]): Promise<void> {
    for (const stage of this.stages) for (const id of ids) stage.release(id);
  }
}
