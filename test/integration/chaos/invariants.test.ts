/**
 * The chaos harness's oracle, checked on hand-made event logs: a game day is only as good as
 * its checks, so each check must fire on the violation it exists for (a changed, duplicated or
 * missing token; two serving owners of a layer; two serving coordinators; a decreasing epoch)
 * and stay quiet on the legitimate cases next to it (a plan hand-over, a broken stream that
 * showed a correct prefix). Pure functions only; no cluster.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Plan } from '../../../common/cluster/plan';
import type { ClusterStatus, WorkerStatusReply } from '../../../common/wire/messages';
import {
  dualLeaderViolations,
  epochOrderViolations,
  indexViolations,
  memberIntervals,
  outputMismatches,
  ownerViolations,
  partialOutputViolations,
} from '../../../chaos/invariants';
import { detectionMs, longestStallMs, percentile, recoveryMs, reshards } from '../../../chaos/measures';
import type { EtcdEvent, StatusSample, WorkerSample } from '../../../chaos/observer';
import type { Attempt, RequestRecord } from '../../../chaos/workload';

const REFERENCE = new Map([[0, [5, 6, 7, 8]]]);

function attempt(tokenIds: readonly number[], finished: boolean, indices = tokenIds.map((_, i) => i)): Attempt {
  return {
    coordinator: 'c1',
    startedAtMs: 0,
    endedAtMs: 100,
    tokens: tokenIds.map((tokenId, i) => ({ index: indices[i], tokenId, atMs: 10 * (i + 1) })),
    finished,
    ...(finished ? {} : { error: { code: 'UNAVAILABLE' as const, message: 'broken' } }),
  };
}

function record(...attempts: Attempt[]): RequestRecord {
  const done = attempts.find((a) => a.finished);
  return { lane: 0, iteration: 0, spec: { lane: 0, promptIds: [1, 2], maxTokens: 4 }, attempts, ...(done === undefined ? {} : { completed: done }) };
}

describe('output checks', () => {
  test('an identical output passes; one changed token is reported with its index', () => {
    assert.deepEqual(outputMismatches([record(attempt([5, 6, 7, 8], true))], REFERENCE), []);
    const [mismatch] = outputMismatches([record(attempt([5, 6, 9, 8], true))], REFERENCE);
    assert.match(mismatch, /first difference at index 2 \(got 9, expected 7\)/);
  });

  test('duplicate and missing token indices are told apart; a short finished stream is caught', () => {
    assert.deepEqual(indexViolations([record(attempt([5, 6, 7, 8], true))]), []);
    assert.match(indexViolations([record(attempt([5, 6, 6, 7], true, [0, 1, 1, 2]))])[0], /duplicate token/);
    assert.match(indexViolations([record(attempt([5, 6, 8], true, [0, 1, 3]))])[0], /missing token/);
    assert.match(indexViolations([record(attempt([5, 6, 7], true))])[0], /finished with 3 tokens, 4 asked/);
  });

  test('a broken stream may show a prefix of the reference, never another token', () => {
    assert.deepEqual(partialOutputViolations([record(attempt([5, 6], false), attempt([5, 6, 7, 8], true))], REFERENCE), []);
    assert.match(partialOutputViolations([record(attempt([5, 4], false))], REFERENCE)[0], /token 1 was 4, expected 6/);
  });
});

function reply(serving: boolean, layerStart: number, layerEnd: number, planEpoch: number): WorkerStatusReply {
  return { workerId: '', planEpoch, hasRange: true, layerStart, layerEnd, sequences: 0, kvCacheBytes: 0, serving };
}

function sample(worker: string, atMs: number, r: WorkerStatusReply): WorkerSample {
  return { worker, sentAtMs: atMs - 5, atMs, reply: r };
}

const member = (worker: string, atMs: number, leaseId: string): EtcdEvent => ({ atMs, type: 'put', key: `/bora/members/${worker}`, leaseId, modRevision: atMs });
const gone = (worker: string, atMs: number): EtcdEvent => ({ atMs, type: 'delete', key: `/bora/members/${worker}` });

describe('one serving owner per layer', () => {
  const leases = [member('w1', 0, 'a'), member('w2', 0, 'b')];

  test('two members serving overlapping ranges of different epochs are a fenced hand-over, not a violation', () => {
    const samples = [sample('w1', 100, reply(true, 0, 3, 1)), sample('w2', 110, reply(true, 2, 4, 2))];
    assert.deepEqual(ownerViolations(samples, leases, 1000), { violations: [], handovers: 1 });
  });

  test('overlapping owners of the same epoch violate it', () => {
    const samples = [sample('w1', 100, reply(true, 0, 3, 2)), sample('w2', 110, reply(true, 2, 4, 2))];
    assert.equal(ownerViolations(samples, leases, 1000).violations.length, 1);
  });

  test('a worker still serving after its lease is gone violates it; once it says "not serving" it does not', () => {
    const events = [...leases, gone('w1', 150)];
    const serving = [sample('w1', 200, reply(true, 0, 3, 1)), sample('w2', 210, reply(true, 0, 6, 2))];
    assert.match(ownerViolations(serving, events, 1000).violations[0], /w1\[0,3\)@1 \(no lease\)/);
    const fenced = [sample('w1', 200, reply(false, 0, 3, 1)), sample('w2', 210, reply(true, 0, 6, 2))];
    assert.deepEqual(ownerViolations(fenced, events, 1000).violations, []);
  });

  test('a sample older than the freshness bound does not count', () => {
    const samples = [sample('w1', 100, reply(true, 0, 3, 2)), sample('w2', 2000, reply(true, 0, 3, 2))];
    assert.deepEqual(ownerViolations(samples, leases, 500).violations, []);
  });

  test('membership intervals split on a new lease and end on delete', () => {
    assert.deepEqual(memberIntervals([member('w1', 0, 'a'), gone('w1', 50), member('w1', 80, 'b'), member('w1', 90, 'c')], 'w1'), [
      { fromMs: 0, toMs: 50, leaseId: 'a' },
      { fromMs: 80, toMs: 90, leaseId: 'b' },
      { fromMs: 90, toMs: Infinity, leaseId: 'c' },
    ]);
  });
});

function status(coordinator: string, sentAtMs: number, atMs: number, serving: boolean, planEpoch: number): StatusSample {
  const s: ClusterStatus = { planEpoch, model: 'm', workers: [], activeSequences: 0, waitingRequests: 0, serving, settled: serving };
  return { coordinator, sentAtMs, atMs, status: s };
}

const plan = (epoch: number, atMs: number, modRevision: number): EtcdEvent => ({
  atMs,
  type: 'put',
  key: '/bora/plan',
  leaseId: '0',
  modRevision,
  plan: { epoch, modelId: 'm', numLayers: 1, stages: [] } as unknown as Plan,
});

describe('coordinators and epochs', () => {
  test('two coordinators serving in overlapping calls are reported; a hand-over in sequence is not', () => {
    assert.deepEqual(dualLeaderViolations([status('c1', 0, 10, true, 1), status('c2', 20, 30, true, 2)]), []);
    assert.equal(dualLeaderViolations([status('c1', 0, 30, true, 1), status('c2', 10, 20, true, 2)]).length, 1);
  });

  test('plan epochs must strictly increase in revision order', () => {
    assert.deepEqual(epochOrderViolations([plan(1, 0, 10), plan(2, 5, 11)]), []);
    assert.match(epochOrderViolations([plan(2, 0, 10), plan(2, 5, 11)])[0], /epoch 2 \(revision 11\) after epoch 2/);
  });

  test('reshards count the epoch delta inside a window', () => {
    const events = [plan(1, 0, 1), plan(2, 100, 2), plan(3, 200, 3)];
    assert.equal(reshards(events, 50, 150), 1);
    assert.equal(reshards(events, 50, 250), 2);
  });
});

describe('measures', () => {
  test('detection is timed when the Status call that first showed a higher epoch was sent', () => {
    const samples = [status('c1', 900, 950, true, 1), status('c1', 1200, 2300, true, 2), status('c1', 1400, 1450, true, 2)];
    assert.equal(detectionMs(samples, 1000, 1), 200);
  });

  test('recovery ends the longest stall after the fault; without a stall it is the next token', () => {
    const arrivals = [990, 1005, 1010, 3500, 3510];
    assert.equal(recoveryMs(arrivals, 1000, Infinity), 2500);
    assert.equal(recoveryMs([1010, 1030, 1050], 1000, Infinity), 10);
    // The next fault at 2000 stalls the stream until 4000: not this fault's stall.
    assert.equal(recoveryMs([1010, 1300, 1600, 1900, 4000], 1000, 2000), 10);
    // No token at all before the window ends: recovered with the first one after it.
    assert.equal(recoveryMs([5000], 1000, 2000), 4000);
    assert.equal(longestStallMs(arrivals, 1000, 3000), 1990);
  });

  test('nearest-rank percentiles', () => {
    const values = Array.from({ length: 100 }, (_, i) => i + 1);
    assert.equal(percentile(values, 50), 50);
    assert.equal(percentile(values, 95), 95);
    assert.equal(percentile([], 50), undefined);
  });
});
