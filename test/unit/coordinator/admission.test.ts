/**
 * Admission control on a fake clock, as tables of steps: each limit admits up to its bound, refuses
 * past it with RESOURCE_EXHAUSTED and the right retry-after, and admits again once the hint has
 * passed. Every refusal has a row that fails if the refusal is removed.
 */
import type { Metadata, ServiceError } from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { setImmediate as flush } from 'node:timers/promises';
import { describe, test } from 'node:test';
import { BoraError, ResourceExhaustedError } from '../../../common/errors';
import { fromServiceError, toServiceError } from '../../../common/wire/grpc-status';
import { Admission, type AdmissionOptions, type AdmissionTicket, type KeyLimits } from '../../../coordinator/admission';
import { type AdmissionLimit, AdmissionRefusedError } from '../../../coordinator/admission-error';
import { TokenBucket } from '../../../coordinator/token-bucket';
import { FakeClock } from '../../support/fake-clock';

type Outcome = 'admitted' | 'queued' | 'cancelled' | AdmissionLimit;

type Step =
  | { readonly advanceMs: number }
  | { readonly admit: string; readonly as: string; readonly expect: Outcome; readonly retryAfterMs?: number; readonly abortable?: boolean }
  | { readonly release: string }
  | { readonly tokens: string; readonly count: number }
  | { readonly abort: string }
  /** A queued request settled since: admitted, or refused by `limit`. */
  | { readonly settled: string; readonly expect: Outcome };

const LOOSE: KeyLimits = { requestsPerSecond: 1_000, tokensPerMinute: 1_000_000, maxConcurrentStreams: 100 };

interface Case {
  readonly name: string;
  readonly limits?: Partial<KeyLimits>;
  readonly options?: Partial<AdmissionOptions>;
  readonly steps: readonly Step[];
}

const CASES: readonly Case[] = [
  {
    name: 'requests per second: a burst of 2, then one every 500 ms at 2/s',
    limits: { requestsPerSecond: 2, requestBurst: 2 },
    steps: [
      { admit: 'k', as: 'a', expect: 'admitted' },
      { admit: 'k', as: 'b', expect: 'admitted' },
      { admit: 'k', as: 'c', expect: 'requests-per-second', retryAfterMs: 500 },
      { advanceMs: 300 },
      { admit: 'k', as: 'd', expect: 'requests-per-second', retryAfterMs: 200 },
      { advanceMs: 200 },
      { admit: 'k', as: 'e', expect: 'admitted' },
      { admit: 'k', as: 'f', expect: 'requests-per-second', retryAfterMs: 500 },
    ],
  },
  {
    name: 'requests per second: refused requests are not charged, and the burst is the default (rate)',
    limits: { requestsPerSecond: 1 },
    steps: [
      { admit: 'k', as: 'a', expect: 'admitted' },
      ...Array.from({ length: 5 }, (_, i): Step => ({ admit: 'k', as: `r${i}`, expect: 'requests-per-second', retryAfterMs: 1_000 })),
      { advanceMs: 1_000 },
      { admit: 'k', as: 'b', expect: 'admitted' },
    ],
  },
  {
    name: 'tokens per minute: admitted while in budget, refused in debt until it is paid back',
    limits: { tokensPerMinute: 600 }, // 10 per second
    steps: [
      { admit: 'k', as: 'a', expect: 'admitted' },
      { tokens: 'a', count: 599 },
      { admit: 'k', as: 'b', expect: 'admitted' }, // 1 left
      { tokens: 'b', count: 601 }, // 600 in debt
      { admit: 'k', as: 'c', expect: 'tokens-per-minute', retryAfterMs: 60_100 },
      { advanceMs: 60_000 },
      { admit: 'k', as: 'd', expect: 'tokens-per-minute', retryAfterMs: 100 },
      { advanceMs: 100 },
      { admit: 'k', as: 'e', expect: 'admitted' },
    ],
  },
  {
    name: 'concurrent streams: the third of two is refused until one ends',
    limits: { maxConcurrentStreams: 2 },
    options: { busyRetryAfterMs: 750 },
    steps: [
      { admit: 'k', as: 'a', expect: 'admitted' },
      { admit: 'k', as: 'b', expect: 'admitted' },
      { admit: 'k', as: 'c', expect: 'concurrent-streams', retryAfterMs: 750 },
      { release: 'a' },
      { release: 'a' }, // a second release changes nothing
      { admit: 'k', as: 'd', expect: 'admitted' },
      { admit: 'k', as: 'e', expect: 'concurrent-streams', retryAfterMs: 750 },
    ],
  },
  {
    name: 'keys are independent: one key at its limits does not refuse another',
    limits: { requestsPerSecond: 1, maxConcurrentStreams: 1 },
    steps: [
      { admit: 'k1', as: 'a', expect: 'admitted' },
      { admit: 'k1', as: 'b', expect: 'concurrent-streams' },
      { admit: 'k2', as: 'c', expect: 'admitted' },
      { tokens: 'a', count: 10_000_000 },
      { admit: 'k3', as: 'd', expect: 'admitted' },
    ],
  },
  {
    name: 'the queue: past maxActiveStreams requests wait in order; past maxQueuedStreams they are refused',
    options: { maxActiveStreams: 1, maxQueuedStreams: 2, maxQueueWaitMs: 5_000, busyRetryAfterMs: 400 },
    steps: [
      { admit: 'k1', as: 'a', expect: 'admitted' },
      { admit: 'k2', as: 'b', expect: 'queued' },
      { admit: 'k3', as: 'c', expect: 'queued' },
      { admit: 'k4', as: 'd', expect: 'queue-full', retryAfterMs: 400 },
      { release: 'a' },
      { settled: 'b', expect: 'admitted' },
      { admit: 'k4', as: 'e', expect: 'queued' }, // c waits ahead of it: no overtaking
      { release: 'b' },
      { settled: 'c', expect: 'admitted' },
    ],
  },
  {
    name: 'the queue: a request waits at most maxQueueWaitMs',
    options: { maxActiveStreams: 1, maxQueuedStreams: 4, maxQueueWaitMs: 2_000, busyRetryAfterMs: 300 },
    steps: [
      { admit: 'k1', as: 'a', expect: 'admitted' },
      { admit: 'k2', as: 'b', expect: 'queued' },
      { advanceMs: 1_999 },
      { admit: 'k3', as: 'c', expect: 'queued' },
      { advanceMs: 1 },
      { settled: 'b', expect: 'queue-timeout' },
      { release: 'a' },
      { settled: 'c', expect: 'admitted' },
    ],
  },
  {
    name: 'the queue counts toward a key\'s concurrent streams, and a cancelled wait frees its place',
    limits: { maxConcurrentStreams: 2 },
    options: { maxActiveStreams: 1, maxQueuedStreams: 10, maxQueueWaitMs: 10_000 },
    steps: [
      { admit: 'k', as: 'a', expect: 'admitted' },
      { admit: 'k', as: 'b', expect: 'queued', abortable: true },
      { admit: 'k', as: 'c', expect: 'concurrent-streams' },
      { abort: 'b' },
      { settled: 'b', expect: 'cancelled' },
      { admit: 'k', as: 'd', expect: 'queued' },
      { release: 'a' },
      { settled: 'd', expect: 'admitted' },
    ],
  },
  {
    name: 'no queue at all (maxQueuedStreams 0): full means refused',
    options: { maxActiveStreams: 1, maxQueuedStreams: 0 },
    steps: [
      { admit: 'k1', as: 'a', expect: 'admitted' },
      { admit: 'k2', as: 'b', expect: 'queue-full' },
    ],
  },
];

function outcomeOf(err: unknown): Outcome {
  if (err instanceof AdmissionRefusedError) return err.limit;
  if (err instanceof BoraError && err.code === 'CANCELLED') return 'cancelled';
  throw err;
}

async function run(c: Case): Promise<void> {
  const clock = new FakeClock();
  const admission = new Admission({
    defaultLimits: { ...LOOSE, ...c.limits },
    maxActiveStreams: 100,
    maxQueuedStreams: 100,
    maxQueueWaitMs: 60_000,
    clock,
    ...c.options,
  });
  const tickets = new Map<string, AdmissionTicket>();
  const settled = new Map<string, { outcome: Outcome; retryAfterMs?: number }>();
  const aborts = new Map<string, AbortController>();
  for (const [i, step] of c.steps.entries()) {
    const where = `${c.name}, step ${i + 1}: ${JSON.stringify(step)}`;
    if ('advanceMs' in step) clock.advance(step.advanceMs);
    else if ('release' in step) tickets.get(step.release)?.release();
    else if ('tokens' in step) tickets.get(step.tokens)?.recordTokens(step.count);
    else if ('abort' in step) aborts.get(step.abort)?.abort();
    else if ('admit' in step) {
      const abort = new AbortController();
      aborts.set(step.as, abort);
      admission.admit(step.admit, step.abortable === true ? abort.signal : undefined).then(
        (ticket) => {
          tickets.set(step.as, ticket);
          settled.set(step.as, { outcome: 'admitted' });
        },
        (err: unknown) => settled.set(step.as, { outcome: outcomeOf(err), retryAfterMs: (err as AdmissionRefusedError).retryAfterMs }),
      );
      await flush();
      const got = settled.get(step.as);
      assert.equal(got?.outcome ?? 'queued', step.expect, where);
      if (step.retryAfterMs !== undefined) assert.equal(got?.retryAfterMs, step.retryAfterMs, where);
      continue;
    } else if ('settled' in step) {
      await flush();
      assert.equal(settled.get(step.settled)?.outcome, step.expect, where);
    }
    await flush();
  }
}

describe('Admission', () => {
  for (const c of CASES) test(c.name, () => run(c));

  test('a refusal is a ResourceExhaustedError whose retry-after goes into the trailers', () => {
    const err = new AdmissionRefusedError('queue-full', 1_500, 'full');
    assert.ok(err instanceof ResourceExhaustedError && err.code === 'RESOURCE_EXHAUSTED');
    assert.match(err.message, /retry after 1500 ms/);
    const sent = toServiceError(err);
    const trailers = sent.metadata as Metadata;
    assert.deepEqual(trailers.get('retry-after-ms'), ['1500']);
    assert.deepEqual(trailers.get('retry-after'), ['2']); // whole seconds, rounded up
    assert.deepEqual(trailers.get('bora-error-code'), ['RESOURCE_EXHAUSTED']);
    const received = fromServiceError(sent as ServiceError);
    assert.ok(received instanceof ResourceExhaustedError);
    assert.equal(received.retryAfterMs, 1_500, 'the hint survives the trip');
    const plain = fromServiceError(toServiceError(new ResourceExhaustedError('no hint')) as ServiceError);
    assert.ok(plain instanceof ResourceExhaustedError);
    assert.equal(plain.retryAfterMs, undefined);
    assert.deepEqual((toServiceError(new ResourceExhaustedError('no hint')).metadata as Metadata).get('retry-after'), []);
  });

  test('refuses bad configuration', () => {
    const ok = { defaultLimits: LOOSE, maxActiveStreams: 1, maxQueuedStreams: 0, maxQueueWaitMs: 1 };
    assert.doesNotThrow(() => new Admission(ok));
    assert.throws(() => new Admission({ ...ok, maxActiveStreams: 0 }), /maxActiveStreams/);
    assert.throws(() => new Admission({ ...ok, maxQueuedStreams: -1 }), /maxQueuedStreams/);
    assert.throws(() => new Admission({ ...ok, defaultLimits: { ...LOOSE, requestsPerSecond: 0 } }), /requestsPerSecond/);
    assert.throws(() => new Admission({ ...ok, defaultLimits: { ...LOOSE, tokensPerMinute: 1.5 } }), /tokensPerMinute/);
    assert.throws(() => new Admission({ ...ok, limitsByKey: { k: { ...LOOSE, maxConcurrentStreams: 0 } } }), /limitsByKey\.k\.maxConcurrentStreams/);
  });

  test('per-key limits override the defaults', async () => {
    const admission = new Admission({
      defaultLimits: { ...LOOSE, maxConcurrentStreams: 1 },
      limitsByKey: { big: { ...LOOSE, maxConcurrentStreams: 3 } },
      maxActiveStreams: 10,
      maxQueuedStreams: 0,
      maxQueueWaitMs: 1,
      clock: new FakeClock(),
    });
    for (let i = 0; i < 3; i++) await admission.admit('big');
    await admission.admit('small');
    await assert.rejects(admission.admit('small'), (e: unknown) => e instanceof AdmissionRefusedError && e.limit === 'concurrent-streams');
    await assert.rejects(admission.admit('big'), (e: unknown) => e instanceof AdmissionRefusedError && e.limit === 'concurrent-streams');
    assert.deepEqual(admission.load(), { activeStreams: 4, queuedStreams: 0 });
  });

  test('an already aborted signal is refused without queueing', async () => {
    const admission = new Admission({ defaultLimits: LOOSE, maxActiveStreams: 1, maxQueuedStreams: 1, maxQueueWaitMs: 1, clock: new FakeClock() });
    const abort = new AbortController();
    abort.abort();
    await assert.rejects(admission.admit('k', abort.signal), (e: unknown) => e instanceof BoraError && e.code === 'CANCELLED');
    assert.deepEqual(admission.load(), { activeStreams: 0, queuedStreams: 0 });
  });
});

describe('TokenBucket', () => {
  test('fills continuously up to capacity, tells the wait, goes into debt on charge', () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket(10, 5, clock);
    assert.equal(bucket.level(), 10);
    assert.equal(bucket.tryTake(10), true);
    assert.equal(bucket.tryTake(1), false);
    assert.equal(bucket.waitMs(1), 200);
    clock.advance(100);
    assert.equal(bucket.level(), 0.5);
    clock.advance(10_000);
    assert.equal(bucket.level(), 10); // capped
    bucket.charge(15);
    assert.equal(bucket.level(), -5);
    assert.equal(bucket.waitMs(1), 1_200);
    assert.throws(() => bucket.charge(-1), /non-negative/);
    assert.throws(() => new TokenBucket(0, 1, clock), /capacity/);
    assert.throws(() => new TokenBucket(1, 0, clock), /refill/);
  });
});
