/**
 * This machine's read bandwidth as onnxruntime sees it: a ReduceSum over a 1 GiB float32 tensor
 * with the same thread count the engine uses. Batch-1 decode reads every weight once per token,
 * so bandwidth / weight bytes bounds its tokens per second.
 */
import type { SessionSettings } from '../common/engine/ort-session';
import { createSession, f32Tensor } from '../common/engine/ort-session';
import { GraphBuilder, ONNX_FLOAT } from '../common/onnx/graph-builder';
import { median } from './stats';

const PROBE_BYTES = 1024 ** 3;

export async function measureReadBandwidth(settings: SessionSettings, repeats = 7): Promise<{ bytesPerSecond: number; samplesMs: number[] }> {
  const count = PROBE_BYTES / 4;
  const g = new GraphBuilder('bandwidth');
  const x = g.input('x', ONNX_FLOAT, [count]);
  g.output(g.op('ReduceSum', [x], { attrs: { keepdims: 0 } }), 'sum', ONNX_FLOAT, []);
  const session = await createSession(g.toModel(), settings);
  const data = new Float32Array(count);
  for (let i = 0; i < count; i += 1024) data[i] = 1; // touch every page so the probe reads real memory
  const feeds = { x: f32Tensor(data, [count]) };
  await session.run(feeds);
  const samplesMs: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const start = process.hrtime.bigint();
    await session.run(feeds);
    samplesMs.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  await session.release();
  return { bytesPerSecond: PROBE_BYTES / (median(samplesMs) / 1000), samplesMs };
}
