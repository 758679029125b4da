/**
 * `bora up`'s progress line while the workers load their layers: it reads each worker's
 * bora_model_load_layers / bora_model_load_bytes gauges from its /metrics, and on a terminal
 * rewrites one stderr line in place (`\r`); when the cluster is ready it ends with a summary.
 */
import { get } from 'node:http';

export interface WorkerLoad {
  readonly layersLoaded: number;
  readonly layersTotal: number;
  readonly bytesLoaded: number;
  readonly bytesTotal: number;
}

const GAUGE_LINE = /^bora_model_load_(layers|bytes)\{state="(loaded|total)"\} (\S+)$/;

/** The load gauges in a Prometheus text exposition; undefined before any load was reported. */
export function parseLoadGauges(text: string): WorkerLoad | undefined {
  const found = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = GAUGE_LINE.exec(line.trim());
    if (m !== null) found.set(`${m[1]}.${m[2]}`, Number(m[3]));
  }
  if (found.size < 4) return undefined;
  return { layersLoaded: found.get('layers.loaded')!, layersTotal: found.get('layers.total')!, bytesLoaded: found.get('bytes.loaded')!, bytesTotal: found.get('bytes.total')! };
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/** One line for all workers: `loading: w1 3/8 layers  w2 8/8 layers | 12.0/~30.0 MiB`. */
export function formatProgressLine(loads: ReadonlyMap<string, WorkerLoad | undefined>): string {
  let loaded = 0;
  let total = 0;
  const parts = [...loads].map(([id, load]) => {
    if (load === undefined) return `${id} -`;
    loaded += load.bytesLoaded;
    total += load.bytesTotal;
    return `${id} ${load.layersLoaded}/${load.layersTotal} layers`;
  });
  return `loading: ${parts.join('  ')} | ${mib(loaded)}/~${mib(total)}`;
}

/** The summary once the plan is ready. */
export function formatSummary(loads: ReadonlyMap<string, WorkerLoad | undefined>, seconds: number, planEpoch: number): string {
  const known = [...loads.values()].filter((l): l is WorkerLoad => l !== undefined);
  const layers = known.reduce((n, l) => n + l.layersTotal, 0);
  const bytes = known.reduce((n, l) => n + l.bytesLoaded, 0);
  return `${loads.size} workers loaded ${layers} layers (${mib(bytes)}) in ${seconds.toFixed(1)} s; plan ${planEpoch} is serving`;
}

/** A worker's load gauges (undefined when it cannot be reached yet or reported nothing). */
export function fetchWorkerLoad(metricsAddress: string, timeoutMs = 1000): Promise<WorkerLoad | undefined> {
  return new Promise((resolve) => {
    const req = get(`http://${metricsAddress}/metrics`, { timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve(res.statusCode === 200 ? parseLoadGauges(body) : undefined));
      res.on('error', () => resolve(undefined));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
  });
}

/** Rewrites one line on a terminal; elsewhere (a pipe, a file) writes nothing until the summary. */
export class ProgressLine {
  private shown = false;

  constructor(private readonly out: NodeJS.WriteStream = process.stderr) {}

  get enabled(): boolean {
    return this.out.isTTY === true;
  }

  update(line: string): void {
    if (!this.enabled) return;
    const width = (this.out.columns ?? 0) > 20 ? this.out.columns : 120; // a pty may report 0 columns
    this.out.write(`\r${line.slice(0, width - 1).padEnd(Math.min(width - 1, line.length + 8))}`);
    this.shown = true;
  }

  finish(summary: string): void {
    this.out.write(`${this.shown ? '\r\x1b[2K' : ''}${summary}\n`);
    this.shown = false;
  }
}
