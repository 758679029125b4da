/**
 * Throughput of a node's link, measured from the kernel's byte counters of its bridge-side veth
 * (/sys/class/net/DEV/statistics: tx_bytes is what goes to the node, rx_bytes what comes from it),
 * sampled every `intervalMs`. S7 uses it to show that its rate limit held the link at, and not
 * above, the limit.
 */
import { readFileSync } from 'node:fs';

export interface LinkSample {
  readonly atMs: number;
  readonly toNodeBytes: number;
  readonly fromNodeBytes: number;
}

export function readLinkBytes(dev: string): { toNodeBytes: number; fromNodeBytes: number } {
  const read = (what: string): number => Number(readFileSync(`/sys/class/net/${dev}/statistics/${what}`, 'utf8').trim());
  return { toNodeBytes: read('tx_bytes'), fromNodeBytes: read('rx_bytes') };
}

/**
 * Highest mean rate (bits/s) over any window of `windowMs` between samples, per direction. A run
 * shorter than the window (a fault-free run on a fast, quiet machine can be) is measured over its
 * whole span instead: its mean rate, which no window's peak can be below.
 */
export function peakRatesBitsPerS(samples: readonly LinkSample[], windowMs: number): { toNode: number; fromNode: number } {
  const spanMs = samples.length < 2 ? 0 : samples[samples.length - 1].atMs - samples[0].atMs;
  if (spanMs > 0 && spanMs < windowMs) windowMs = spanMs;
  let toNode = 0;
  let fromNode = 0;
  for (let i = 0; i < samples.length; i++) {
    // The first sample at least windowMs after sample i.
    const j = samples.findIndex((s, k) => k > i && s.atMs - samples[i].atMs >= windowMs);
    if (j < 0) break;
    const seconds = (samples[j].atMs - samples[i].atMs) / 1000;
    toNode = Math.max(toNode, (8 * (samples[j].toNodeBytes - samples[i].toNodeBytes)) / seconds);
    fromNode = Math.max(fromNode, (8 * (samples[j].fromNodeBytes - samples[i].fromNodeBytes)) / seconds);
  }
  return { toNode, fromNode };
}

/** Samples `dev`'s counters every `intervalMs` until stop(). */
export class LinkMeter {
  readonly samples: LinkSample[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly dev: string,
    private readonly nowMs: () => number,
    intervalMs: number,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
  }

  stop(): LinkSample[] {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.sample();
    return this.samples;
  }

  private sample(): void {
    this.samples.push({ atMs: this.nowMs(), ...readLinkBytes(this.dev) });
  }
}

/** "5mbit", "500kbit", "1gbit", "800bit" -> bits per second (tc's decimal units). */
export function parseRateBitsPerS(rate: string): number {
  const m = /^(\d+(?:\.\d+)?)(bit|kbit|mbit|gbit)$/.exec(rate.trim().toLowerCase());
  if (m === null) throw new Error(`unsupported rate "${rate}" (want N bit|kbit|mbit|gbit)`);
  const scale = { bit: 1, kbit: 1e3, mbit: 1e6, gbit: 1e9 }[m[2] as 'bit' | 'kbit' | 'mbit' | 'gbit'];
  return Number(m[1]) * scale;
}
