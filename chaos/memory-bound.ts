/**
 * "No process grows past its bound" (S12): each node's resident memory while under load, against
 * its own peak in a fault-free window plus a fixed allowance. The allowance covers what admitted
 * work legitimately holds (a few more KV caches, a request's prompt being parsed); a node that
 * buffered refused requests, or kept their prompts, would pass it with 10 MB prompts arriving.
 */
import type { RssSample } from './observer';

export interface MemoryPeak {
  readonly node: string;
  /** Peak RSS in the fault-free window; undefined when it was never sampled there. */
  readonly baselineBytes: number | undefined;
  readonly peakBytes: number;
  readonly boundBytes: number | undefined;
}

export const MIB = 1024 * 1024;

function peakIn(samples: readonly RssSample[], node: string, fromMs: number, toMs: number): number | undefined {
  let peak: number | undefined;
  for (const s of samples) if (s.node === node && s.atMs >= fromMs && s.atMs <= toMs) peak = Math.max(peak ?? 0, s.rssBytes);
  return peak;
}

/** Every node sampled in `window`: its peak there, and its bound (baseline peak + allowanceBytes). */
export function memoryPeaks(
  samples: readonly RssSample[],
  baseline: { readonly fromMs: number; readonly toMs: number },
  window: { readonly fromMs: number; readonly toMs: number },
  allowanceBytes: number,
): MemoryPeak[] {
  const nodes = [...new Set(samples.filter((s) => s.atMs >= window.fromMs && s.atMs <= window.toMs).map((s) => s.node))].sort();
  return nodes.map((node) => {
    const baselineBytes = peakIn(samples, node, baseline.fromMs, baseline.toMs);
    return { node, baselineBytes, peakBytes: peakIn(samples, node, window.fromMs, window.toMs) ?? 0, boundBytes: baselineBytes === undefined ? undefined : baselineBytes + allowanceBytes };
  });
}

/** Nodes over their bound, or with no baseline to bound them by. */
export function memoryViolations(peaks: readonly MemoryPeak[]): string[] {
  return peaks.flatMap((p) => {
    if (p.boundBytes === undefined) return [`${p.node}: no fault-free RSS sample to bound it by`];
    return p.peakBytes > p.boundBytes ? [`${p.node}: peak ${mib(p.peakBytes)} over its bound ${mib(p.boundBytes)}`] : [];
  });
}

export function describePeaks(peaks: readonly MemoryPeak[]): string {
  return peaks.map((p) => `${p.node} ${mib(p.peakBytes)} (fault-free ${p.baselineBytes === undefined ? '?' : mib(p.baselineBytes)})`).join(', ');
}

function mib(bytes: number): string {
  return `${Math.round(bytes / MIB)} MiB`;
}
