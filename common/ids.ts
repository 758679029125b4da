/** Distinct id types, so a worker id can never be passed where a sequence id is expected. */

export type SequenceId = string & { readonly __brand: 'SequenceId' };
export type WorkerId = string & { readonly __brand: 'WorkerId' };

export const sequenceId = (raw: string): SequenceId => raw as SequenceId;
export const workerId = (raw: string): WorkerId => raw as WorkerId;

/** A half-open range of decoder layers [start, end). */
export interface LayerRange {
  readonly start: number;
  readonly end: number;
}

export function formatRange(r: LayerRange): string {
  return `[${r.start}, ${r.end})`;
}
