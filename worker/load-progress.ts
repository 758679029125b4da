/**
 * Progress of loading a stage's weights: counted in the engine thread (a WeightSource that adds
 * up the bytes it hands out, and StageEngine's per-layer callback), reported to the main thread,
 * and there set on the bora_model_load_layers / bora_model_load_bytes gauges and written to the
 * log at info level at most once per LOG_INTERVAL_MS, plus once when the load ends.
 *
 * The byte total is known only when the load ends (a stage reads its tensors as stored, quantized
 * or not, and the weight source says their sizes as it reads them): until then the `total` gauge
 * is an estimate, the bytes so far scaled by layers total / layers loaded; at the end it is exact.
 */
import type { WeightSource } from '../common/model/weight-source';
import type { Logger } from '../common/logging/logger';
import type { LoadProgress } from './engine-protocol';

/** At most one progress line per this many milliseconds. */
export const LOG_INTERVAL_MS = 1000;

/** `source`, counting the bytes of every tensor read through it. */
export function countingSource(source: WeightSource, onBytes: (bytes: number) => void): WeightSource {
  return {
    config: source.config,
    readRaw: async (name, expectedShape) => {
      const tensor = await source.readRaw(name, expectedShape);
      onBytes(tensor.bytes.byteLength);
      return tensor;
    },
    readF32: async (name, expectedShape) => {
      const values = await source.readF32(name, expectedShape);
      onBytes(values.byteLength);
      return values;
    },
  };
}

/** The figures the gauges show for a progress report. */
export function loadFigures(p: LoadProgress): { layers: { loaded: number; total: number }; bytes: { loaded: number; total: number } } {
  const estimate = p.done || p.layersLoaded === 0 ? p.bytesLoaded : Math.round((p.bytesLoaded * p.layersTotal) / p.layersLoaded);
  return { layers: { loaded: p.layersLoaded, total: p.layersTotal }, bytes: { loaded: p.bytesLoaded, total: Math.max(estimate, p.bytesLoaded) } };
}

export interface LoadGauges {
  setModelLoad(figures: ReturnType<typeof loadFigures>): void;
}

/** Main-thread side: gauges on every report, a log line at most once a second and at the end. */
export class LoadProgressReporter {
  private lastLogMs = -Infinity;

  constructor(
    private readonly gauges: LoadGauges,
    private readonly log: Logger,
    private readonly nowMs: () => number = () => performance.now(),
  ) {}

  report(progress: LoadProgress): void {
    const figures = loadFigures(progress);
    this.gauges.setModelLoad(figures);
    const now = this.nowMs();
    if (!progress.done && now - this.lastLogMs < LOG_INTERVAL_MS) return;
    this.lastLogMs = progress.done ? -Infinity : now;
    const mib = (bytes: number): string => (bytes / 2 ** 20).toFixed(1);
    this.log.info(
      `${progress.done ? 'loaded' : 'loading'} ${figures.layers.loaded}/${figures.layers.total} layers, ${mib(figures.bytes.loaded)}${progress.done ? '' : `/~${mib(figures.bytes.total)}`} MiB`,
      { layersLoaded: figures.layers.loaded, layersTotal: figures.layers.total, bytesLoaded: figures.bytes.loaded, bytesTotal: figures.bytes.total, done: progress.done },
    );
  }
}
