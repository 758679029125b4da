/** How a stage computes, whichever backend runs it (create-stage-compute.ts picks the backend). */
import { availableParallelism } from 'node:os';
import type { LinearBackend } from '../kernels/native-kernels';

export interface ComputeSettings {
  /**
   * Threads of the native kernels' pool (or onnxruntime's intra-op threads); the sum over
   * processes sharing the cores should not exceed them.
   */
  readonly threads: number;
  /**
   * What runs the linear layers: the native kernels (weights in the checkpoint's precision) or
   * onnxruntime. Default: BORA_KERNELS, else native when built (common/kernels/native-kernels.ts).
   */
  readonly linear?: LinearBackend;
}

export function defaultComputeSettings(): ComputeSettings {
  return { threads: availableParallelism() };
}
