/** Load progress: the byte-counting source, the gauge figures, and a log line at most once a second. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { callbackLogger } from '../../../common/logging/logger';
import type { WeightSource } from '../../../common/model/weight-source';
import { LOG_INTERVAL_MS, LoadProgressReporter, countingSource, loadFigures } from '../../../worker/load-progress';
import { formatProgressLine, formatSummary, parseLoadGauges } from '../../../cli/load-progress-line';

test('the counting source adds up the bytes of every tensor read through it', async () => {
  const inner = {
    config: {} as WeightSource['config'],
    readRaw: async () => ({ dtype: 'BF16' as const, shape: [3], bytes: new Uint8Array(6) }),
    readF32: async () => new Float32Array(5),
  } satisfies WeightSource;
  let bytes = 0;
  const source = countingSource(inner, (n) => (bytes += n));
  await source.readRaw('a');
  await source.readF32('b');
  assert.equal(bytes, 6 + 20);
});

test('the byte total is estimated from the layers so far, exact at the end', () => {
  assert.deepEqual(loadFigures({ layersLoaded: 1, layersTotal: 4, bytesLoaded: 100, done: false }).bytes, { loaded: 100, total: 400 });
  assert.deepEqual(loadFigures({ layersLoaded: 0, layersTotal: 4, bytesLoaded: 0, done: false }).bytes, { loaded: 0, total: 0 });
  assert.deepEqual(loadFigures({ layersLoaded: 4, layersTotal: 4, bytesLoaded: 450, done: true }), { layers: { loaded: 4, total: 4 }, bytes: { loaded: 450, total: 450 } });
});

test('gauges follow every report; the log gets one line per second and the last one', () => {
  let nowMs = 0;
  const lines: { message: string; fields: Record<string, unknown> }[] = [];
  const set: unknown[] = [];
  const reporter = new LoadProgressReporter({ setModelLoad: (f) => set.push(f) }, callbackLogger((message, _level, fields) => lines.push({ message, fields })), () => nowMs);
  for (let layer = 0; layer <= 8; layer++) {
    reporter.report({ layersLoaded: layer, layersTotal: 8, bytesLoaded: layer * 1000, done: false });
    nowMs += LOG_INTERVAL_MS / 4;
  }
  reporter.report({ layersLoaded: 8, layersTotal: 8, bytesLoaded: 8500, done: true });
  assert.equal(set.length, 10, 'every report sets the gauges');
  // Reports at 0, 250, ..., 2000 ms: lines at 0, 1000 and 2000 ms, then the final one.
  assert.deepEqual(lines.map((l) => l.fields.layersLoaded), [0, 4, 8, 8]);
  assert.equal(lines.at(-1)!.fields.done, true);
  assert.equal(lines.at(-1)!.fields.bytesTotal, 8500);
  assert.match(lines.at(-1)!.message, /^loaded 8\/8 layers/);
});

test('bora up reads the gauges from /metrics text and writes one line, then a summary', () => {
  const text = [
    '# HELP bora_model_load_layers ...',
    'bora_model_load_layers{state="loaded"} 3',
    'bora_model_load_layers{state="total"} 4',
    'bora_model_load_bytes{state="loaded"} 3145728',
    'bora_model_load_bytes{state="total"} 4194304',
  ].join('\n');
  const load = parseLoadGauges(text);
  assert.deepEqual(load, { layersLoaded: 3, layersTotal: 4, bytesLoaded: 3145728, bytesTotal: 4194304 });
  assert.equal(parseLoadGauges('bora_plan_epoch 3'), undefined);
  const loads = new Map([['w1', load], ['w2', undefined]]);
  assert.equal(formatProgressLine(loads), 'loading: w1 3/4 layers  w2 - | 3.0 MiB/~4.0 MiB');
  assert.equal(formatSummary(new Map([['w1', { ...load!, layersLoaded: 4, bytesLoaded: 4194304 }]]), 2.34, 5), '1 workers loaded 4 layers (4.0 MiB) in 2.3 s; plan 5 is serving');
});
