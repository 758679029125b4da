/**
 * Retries (M13): a Bora client that re-sends a request after a retryable error marks the re-send
 * in its metadata, and the coordinator that receives it counts it. Two real Inference services:
 * the first answers UNAVAILABLE as a standby does, the second fails the request for good; the
 * client's first call carries no mark, its re-send to the second carries `retry`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { generateRemote } from '../../../cli/inference-client';
import { BoraError, UnavailableError } from '../../../common/errors';
import { parseExposition, sampleValue } from '../../../common/metrics/exposition';
import { retryKindOf, retryMetadata, type RetryKind } from '../../../common/wire/retry-metadata';
import { CoordinatorMetrics } from '../../../coordinator/coordinator-metrics';
import { greedyIds } from '../../support/cluster';
import { startInferenceServer, type InferenceServerHarness } from '../../support/inference-server';

describe('client retries', () => {
  const standbyRetries: RetryKind[] = [];
  const leaderRetries: RetryKind[] = [];
  let standby: InferenceServerHarness;
  let leader: InferenceServerHarness;
  before(async () => {
    standby = await startInferenceServer({
      maxPromptBytes: 1024,
      deps: {
        checkServing: () => {
          throw new UnavailableError('this coordinator is a standby; retry on the leader');
        },
        onClientRetry: (kind) => standbyRetries.push(kind),
      },
    });
    // Serves (checkServing passes), but its scheduler refuses: an INTERNAL error, not retried.
    leader = await startInferenceServer({ maxPromptBytes: 1024, deps: { onClientRetry: (kind) => leaderRetries.push(kind) } });
  });
  after(async () => {
    await standby.close();
    await leader.close();
  });

  test('the re-send after UNAVAILABLE says retry; the first attempt says nothing', async () => {
    const err = await generateRemote(`${standby.address},${leader.address}`, greedyIds([1, 2, 3], 2), () => undefined, 10_000).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof BoraError && !err.retryable, `the second coordinator's error ends the request: ${String(err)}`);
    assert.deepEqual(standbyRetries, [], 'the first attempt is no retry');
    assert.deepEqual(leaderRetries, ['retry']);
  });

  test('the metadata round trip, and the counter by kind', async () => {
    assert.equal(retryKindOf(retryMetadata(undefined)), undefined);
    assert.equal(retryKindOf(retryMetadata('resume')), 'resume');
    const odd = retryMetadata(undefined);
    odd.set('bora-retry', 'again');
    assert.equal(retryKindOf(odd), undefined, 'an unknown value is not counted');

    const metrics = new CoordinatorMetrics({ processMetrics: false });
    let s = parseExposition(await metrics.registry.metrics());
    assert.equal(sampleValue(s, 'bora_client_retries_total', { kind: 'retry' }), 0, 'present from the start');
    metrics.countClientRetry('retry');
    metrics.countClientRetry('resume');
    metrics.countClientRetry('resume');
    s = parseExposition(await metrics.registry.metrics());
    assert.equal(sampleValue(s, 'bora_client_retries_total', { kind: 'retry' }), 1);
    assert.equal(sampleValue(s, 'bora_client_retries_total', { kind: 'resume' }), 2);
  });
});
