/**
 * This machine's read bandwidth as onnxruntime sees it, with the thread count the engine uses:
 * three probes over 1 GiB of float32 (a ReduceSum over the whole tensor, a row-wise ReduceSum,
 * and a matrix-vector product whose 1 GiB matrix is read once, like a decode step's weights).
 * Batch-1 decode reads every weight once per token, so bandwidth / weight bytes bounds its
 * tokens per second; the bound uses the fastest probe, the least flattering choice. Where the
 * native kernels are built, their matrix-vector product over the same 1 GiB is a fourth probe.
 */
import type { SessionSettings } from '../common/engine/ort-session';
import { createSession, f32Tensor } from '../common/engine/ort-session';
import { nativeKernels } from '../common/kernels/native-kernels';
import { GraphBuilder, ONNX_FLOAT } from '../common/onnx/graph-builder';
import { median } from './stats';

const PROBE_BYTES = 1024 ** 3;
const COUNT = PROBE_BYTES / 4;
const ROW = 16384;

export interface BandwidthProbe {
  readonly name: string;
  readonly bytesPerSecond: number;
  readonly samplesMs: number[];
}

async function probe(name: string, settings: SessionSettings, build: (g: GraphBuilder) => void, feeds: Record<string, ReturnType<typeof f32Tensor>>, repeats: number): Promise<BandwidthProbe> {
  const g = new GraphBuilder(name);
  build(g);
  const session = await createSession(g.toModel(), settings);
  await session.run(feeds);
  const samplesMs: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const start = process.hrtime.bigint();
    await session.run(feeds);
    samplesMs.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  await session.release();
  return { name, bytesPerSecond: PROBE_BYTES / (median(samplesMs) / 1000), samplesMs };
}

export async function measureReadBandwidth(settings: SessionSettings, repeats = 7): Promise<{ best: BandwidthProbe; probes: BandwidthProbe[] }> {
  const data = new Float32Array(COUNT);
  for (let i = 0; i < COUNT; i += 1024) data[i] = 1; // touch every page so the probes read real memory
  const probes = [
    await probe(
      'ReduceSum (whole tensor)',
      settings,
      (g) => g.output(g.op('ReduceSum', [g.input('x', ONNX_FLOAT, [COUNT])], { attrs: { keepdims: 0 } }), 's', ONNX_FLOAT, []),
      { x: f32Tensor(data, [COUNT]) },
      repeats,
    ),
    await probe(
      'ReduceSum (per row)',
      settings,
      (g) => g.output(g.op('ReduceSum', [g.input('x', ONNX_FLOAT, [COUNT / ROW, ROW]), g.constInt64([1])], { attrs: { keepdims: 0 } }), 's', ONNX_FLOAT, [COUNT / ROW]),
      { x: f32Tensor(data, [COUNT / ROW, ROW]) },
      repeats,
    ),
    await probe(
      'MatMul (1 x 16384) @ (16384 x 16384)',
      settings,
      (g) => g.output(g.op('MatMul', [g.input('x', ONNX_FLOAT, [1, ROW]), g.input('w', ONNX_FLOAT, [ROW, COUNT / ROW])]), 'y', ONNX_FLOAT, [1, COUNT / ROW]),
      { x: f32Tensor(new Float32Array(ROW).fill(1), [1, ROW]), w: f32Tensor(data, [ROW, COUNT / ROW]) },
      repeats,
    ),
  ];
  const kernels = nativeKernels();
  if (kernels !== undefined) {
    const panels = kernels.pack(data, 'f32', ROW, settings.intraOpThreads);
    const x = new Float32Array(ROW).fill(1);
    const y = new Float32Array(ROW);
    kernels.linear(x, panels, 'f32', ROW, y, 1, false, settings.intraOpThreads);
    const samplesMs: number[] = [];
    for (let i = 0; i < repeats; i++) {
      const start = process.hrtime.bigint();
      kernels.linear(x, panels, 'f32', ROW, y, 1, false, settings.intraOpThreads);
      samplesMs.push(Number(process.hrtime.bigint() - start) / 1e6);
    }
    probes.push({ name: `native matrix-vector (${kernels.isa()})`, bytesPerSecond: PROBE_BYTES / (median(samplesMs) / 1000), samplesMs });
  }
  const best = probes.reduce((a, b) => (b.bytesPerSecond > a.bytesPerSecond ? b : a));
  return { best, probes };
}
