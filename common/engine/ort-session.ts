/**
 * Creating onnxruntime sessions with the thread settings Bora uses everywhere: the fallback
 * backend (onnx-compute.ts), the reference graphs of the attention tests, and the benchmarks'
 * bandwidth probes. The native path never sees these settings (compute-settings.ts).
 */
import * as ort from 'onnxruntime-node';

export interface SessionSettings {
  /** onnxruntime intra-op threads; the sum over processes sharing the cores should not exceed them. */
  readonly intraOpThreads: number;
  /**
   * Whether idle intra-op threads spin. Every layer is its own session with its own thread pool,
   * so spinning threads of the sessions that just ran steal the cores from the one running now:
   * measured on the 1B benchmark model, batch-1 decode took 580 ms per token with spinning and
   * 120 ms without. Off everywhere, unless a single session runs alone.
   */
  readonly allowSpinning: boolean;
}

export async function createSession(model: Uint8Array, settings: SessionSettings): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(model, {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    intraOpNumThreads: settings.intraOpThreads,
    interOpNumThreads: 1,
    extra: { session: { intra_op: { allow_spinning: settings.allowSpinning ? '1' : '0' } } },
  });
}

export function f32Tensor(data: Float32Array, dims: readonly number[]): ort.Tensor {
  return new ort.Tensor('float32', data, dims);
}

/** Runs a session and returns its float32 outputs by name. */
export async function runF32(session: ort.InferenceSession, feeds: Record<string, ort.Tensor>): Promise<Record<string, Float32Array>> {
  const results = await session.run(feeds);
  const out: Record<string, Float32Array> = {};
  for (const [name, tensor] of Object.entries(results)) out[name] = tensor.data as Float32Array;
  return out;
}
