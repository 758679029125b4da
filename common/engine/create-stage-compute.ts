/** The stage compute the settings ask for: native kernels when built, unless told otherwise. */
import { nativeKernels, resolveLinearBackend } from '../kernels/native-kernels';
import type { ComputeSettings } from './compute-settings';
import type { StageCompute } from './layer-compute';
import { NativeCompute } from './native-compute';
import { OnnxCompute } from './onnx-compute';

export function createStageCompute(settings: ComputeSettings): StageCompute {
  if (resolveLinearBackend(settings.linear) === 'onnx') return new OnnxCompute(settings);
  return new NativeCompute(nativeKernels()!, settings);
}
