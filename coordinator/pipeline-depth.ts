/**
 * How many micro-batches the scheduler keeps in flight on a pipeline. Stages on machines of their
 * own overlap: one micro-batch per stage keeps every machine busy. Stages that share a machine
 * share its cores and memory bandwidth, so overlapping them gains nothing and multiplies the
 * weight reads of a decode step (every micro-batch reads every stage's weights): measured with 3
 * workers on one 2-core machine, 16 streams decode at 46.8 tok/s with one micro-batch in flight
 * against 38.1 tok/s with three (docs/benchmarks.md).
 */
import { InvalidArgumentError } from '../common/errors';

/** 'auto': one micro-batch per distinct host among the stages; or a fixed count. */
export type MicroBatches = 'auto' | number;

/** The host part of host:port (IPv6 in brackets). */
function hostOf(address: string): string {
  const colon = address.lastIndexOf(':');
  return colon < 0 ? address : address.slice(0, colon);
}

export function pipelineDepth(stageAddresses: readonly string[], setting: MicroBatches): number {
  if (stageAddresses.length === 0) return 1;
  if (setting === 'auto') return new Set(stageAddresses.map(hostOf)).size;
  return Math.max(1, Math.min(setting, stageAddresses.length));
}

/** Parses --micro-batches: "auto" or a positive integer. */
export function parseMicroBatches(raw: string | undefined): MicroBatches {
  if (raw === undefined || raw === 'auto') return 'auto';
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError(`--micro-batches must be auto or a positive integer, got "${raw}"`);
  return n;
}
