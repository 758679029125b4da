/**
 * The coordinator's admission limits from its command line. Defaults suit one small cluster: a
 * key may hold 16 streams and start 10 requests a second (bursts of 20), generate 60,000 tokens a
 * minute; 64 streams run at once cluster-wide and 128 more wait up to 30 s.
 */
import { InvalidArgumentError } from '../common/errors';
import type { AdmissionOptions } from '../coordinator/admission';
import { intFlag } from './args';

export const ADMISSION_FLAGS = {
  'key-requests-per-second': { type: 'string' },
  'key-request-burst': { type: 'string' },
  'key-tokens-per-minute': { type: 'string' },
  'key-streams': { type: 'string' },
  'max-streams': { type: 'string' },
  'max-queued-streams': { type: 'string' },
  'queue-wait-ms': { type: 'string' },
} as const;

type AdmissionFlagValues = { readonly [K in keyof typeof ADMISSION_FLAGS]?: string };

function positive(value: string | undefined, flag: string, fallback: number): number {
  const n = intFlag(value, flag, fallback);
  if (n < 1) throw new InvalidArgumentError(`${flag} must be at least 1, got ${n}`);
  return n;
}

export function admissionFromFlags(v: AdmissionFlagValues): AdmissionOptions {
  const queued = intFlag(v['max-queued-streams'], '--max-queued-streams', 128);
  if (queued < 0) throw new InvalidArgumentError(`--max-queued-streams must be 0 or more, got ${queued}`);
  return {
    defaultLimits: {
      requestsPerSecond: positive(v['key-requests-per-second'], '--key-requests-per-second', 10),
      requestBurst: positive(v['key-request-burst'], '--key-request-burst', 20),
      tokensPerMinute: positive(v['key-tokens-per-minute'], '--key-tokens-per-minute', 60_000),
      maxConcurrentStreams: positive(v['key-streams'], '--key-streams', 16),
    },
    maxActiveStreams: positive(v['max-streams'], '--max-streams', 64),
    maxQueuedStreams: queued,
    maxQueueWaitMs: positive(v['queue-wait-ms'], '--queue-wait-ms', 30_000),
  };
}
