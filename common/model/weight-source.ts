/**
 * Where a stage reads its tensors from: a local checkpoint directory (Checkpoint) or the
 * coordinator over gRPC (for a worker that cannot see the checkpoint). Both check shapes.
 */
import type { RawTensor } from './checkpoint';
import type { ModelConfig } from './config';

export interface WeightSource {
  readonly config: ModelConfig;
  /** Stored bytes of one tensor, after checking its dtype and (when given) its shape. */
  readRaw(name: string, expectedShape?: readonly number[]): Promise<RawTensor>;
  /** One tensor widened to float32. */
  readF32(name: string, expectedShape?: readonly number[]): Promise<Float32Array>;
}
