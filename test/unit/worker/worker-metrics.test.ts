import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { findSample, type MetricSample, parseExposition, sampleValue } from '../../../common/metrics/exposition';
import { EXPERT_CALL_ROLES, FRAME_REJECT_REASONS, WorkerMetrics } from '../../../worker/worker-metrics';

async function scrape(metrics: WorkerMetrics): Promise<MetricSample[]> {
  return parseExposition(await metrics.registry.metrics());
}

describe('WorkerMetrics', () => {
  test('forward time and batch size per stage', async () => {
    const metrics = new WorkerMetrics();
    metrics.observeForward(0, 0.004, 1);
    metrics.observeForward(0, 0.03, 1);
    metrics.observeForward(0, 0.8, 300);
    metrics.observeForward(1, 0.002, 16);
    const s = await scrape(metrics);
    const fwd = 'bora_stage_forward_seconds';
    assert.equal(sampleValue(s, `${fwd}_bucket`, { stage: '0', le: '0.0025' }), 0);
    assert.equal(sampleValue(s, `${fwd}_bucket`, { stage: '0', le: '0.005' }), 1);
    assert.equal(sampleValue(s, `${fwd}_bucket`, { stage: '0', le: '0.035' }), 2);
    assert.equal(sampleValue(s, `${fwd}_bucket`, { stage: '0', le: '1' }), 3);
    assert.equal(sampleValue(s, `${fwd}_count`, { stage: '0' }), 3);
    assert.ok(Math.abs(sampleValue(s, `${fwd}_sum`, { stage: '0' }) - 0.834) < 1e-9);
    assert.equal(sampleValue(s, `${fwd}_count`, { stage: '1' }), 1);
    const batch = 'bora_stage_forward_batch_tokens';
    assert.equal(sampleValue(s, `${batch}_bucket`, { stage: '0', le: '1' }), 2);
    assert.equal(sampleValue(s, `${batch}_bucket`, { stage: '0', le: '256' }), 2);
    assert.equal(sampleValue(s, `${batch}_bucket`, { stage: '0', le: '512' }), 3);
    assert.equal(sampleValue(s, `${batch}_sum`, { stage: '0' }), 302);
    assert.equal(sampleValue(s, `${batch}_bucket`, { stage: '1', le: '8' }), 0);
    assert.equal(sampleValue(s, `${batch}_bucket`, { stage: '1', le: '16' }), 1);
  });

  test('queue depth and KV cache gauges per stage, removed with the stage', async () => {
    const metrics = new WorkerMetrics();
    metrics.setQueueDepth(0, 4);
    metrics.setQueueDepth(0, 2);
    metrics.setQueueDepth(1, 9);
    metrics.setKvCache(0, 1_048_576, 3);
    metrics.setKvCache(1, 2048, 1);
    metrics.observeForward(1, 0.01, 1);
    let s = await scrape(metrics);
    assert.equal(sampleValue(s, 'bora_stage_queue_depth', { stage: '0' }), 2);
    assert.equal(sampleValue(s, 'bora_stage_queue_depth', { stage: '1' }), 9);
    assert.equal(sampleValue(s, 'bora_kv_cache_bytes', { stage: '0' }), 1_048_576);
    assert.equal(sampleValue(s, 'bora_kv_sequences', { stage: '0' }), 3);
    assert.equal(sampleValue(s, 'bora_kv_sequences', { stage: '1' }), 1);

    metrics.removeStage(1);
    s = await scrape(metrics);
    const stage1 = s.filter((x) => x.labels.stage === '1');
    assert.deepEqual(stage1, [], 'no series of the removed stage remain');
    assert.equal(sampleValue(s, 'bora_kv_cache_bytes', { stage: '0' }), 1_048_576);
  });

  test('prefix cache per stage: hit and miss tokens and evictions count up from the engine totals, bytes and blocks held', async () => {
    const metrics = new WorkerMetrics();
    metrics.setPrefixCache(0, { hitTokens: 32, missTokens: 48, blocks: 5, bytes: 40_960, evictedBlocks: 0 });
    metrics.setPrefixCache(0, { hitTokens: 96, missTokens: 48, blocks: 3, bytes: 24_576, evictedBlocks: 2 });
    metrics.setPrefixCache(1, { hitTokens: 16, missTokens: 0, blocks: 1, bytes: 8192, evictedBlocks: 0 });
    let s = await scrape(metrics);
    assert.equal(sampleValue(s, 'bora_prefix_cache_hit_tokens_total', { stage: '0' }), 96);
    assert.equal(sampleValue(s, 'bora_prefix_cache_miss_tokens_total', { stage: '0' }), 48);
    assert.equal(sampleValue(s, 'bora_prefix_cache_evicted_blocks_total', { stage: '0' }), 2);
    assert.equal(sampleValue(s, 'bora_prefix_cache_bytes', { stage: '0' }), 24_576);
    assert.equal(sampleValue(s, 'bora_prefix_cache_blocks', { stage: '0' }), 3);
    assert.equal(sampleValue(s, 'bora_prefix_cache_hit_tokens_total', { stage: '1' }), 16);
    // A reloaded stage reports totals from zero again: the counter keeps growing, never goes back.
    metrics.setPrefixCache(0, { hitTokens: 16, missTokens: 0, blocks: 1, bytes: 8192, evictedBlocks: 0 });
    s = await scrape(metrics);
    assert.equal(sampleValue(s, 'bora_prefix_cache_hit_tokens_total', { stage: '0' }), 112);
    assert.equal(sampleValue(s, 'bora_prefix_cache_bytes', { stage: '0' }), 8192);
    metrics.removeStage(1);
    s = await scrape(metrics);
    assert.deepEqual(s.filter((x) => x.labels.stage === '1'), []);
  });

  test('plan epoch, model load time, rejected frames by reason, lease state', async () => {
    const metrics = new WorkerMetrics();
    let s = await scrape(metrics);
    assert.equal(sampleValue(s, 'bora_lease_serving'), 0, 'not serving until told');
    for (const reason of FRAME_REJECT_REASONS) assert.equal(sampleValue(s, 'bora_frames_rejected_total', { reason }), 0);

    metrics.setPlanEpoch(3);
    metrics.observeModelLoad(4.2);
    metrics.observeModelLoad(0.07);
    metrics.countRejectedFrame('stale_epoch');
    metrics.countRejectedFrame('stale_epoch');
    metrics.countRejectedFrame('not_serving');
    metrics.setServing(true);
    s = await scrape(metrics);
    assert.equal(sampleValue(s, 'bora_plan_epoch'), 3);
    assert.equal(sampleValue(s, 'bora_model_load_seconds_bucket', { le: '0.05' }), 0);
    assert.equal(sampleValue(s, 'bora_model_load_seconds_bucket', { le: '0.1' }), 1);
    assert.equal(sampleValue(s, 'bora_model_load_seconds_bucket', { le: '5' }), 2);
    assert.equal(sampleValue(s, 'bora_model_load_seconds_count'), 2);
    assert.equal(sampleValue(s, 'bora_frames_rejected_total', { reason: 'stale_epoch' }), 2);
    assert.equal(sampleValue(s, 'bora_frames_rejected_total', { reason: 'not_serving' }), 1);
    assert.equal(sampleValue(s, 'bora_frames_rejected_total', { reason: 'malformed' }), 0);
    assert.equal(sampleValue(s, 'bora_lease_serving'), 1);
    metrics.setServing(false);
    assert.equal(sampleValue(await scrape(metrics), 'bora_lease_serving'), 0);
  });

  test('event-loop lag and process metrics carry the bora_worker_ prefix, and see a blocked loop', async () => {
    const metrics = new WorkerMetrics();
    await scrape(metrics); // resets the delay histogram
    // Let the 10 ms monitor sample a healthy loop, then block the loop for ~60 ms.
    await new Promise((resolve) => setTimeout(resolve, 30));
    const until = performance.now() + 60;
    while (performance.now() < until) {
      // busy: the event loop cannot run
    }
    await new Promise((resolve) => setTimeout(resolve, 30));
    const s = await scrape(metrics);
    const maxLag = sampleValue(s, 'bora_worker_nodejs_eventloop_lag_max_seconds');
    assert.ok(maxLag >= 0.04 && maxLag < 5, `max lag ${maxLag} s should reflect the ~60 ms block`);
    assert.ok(sampleValue(s, 'bora_worker_process_resident_memory_bytes') > 0);
    assert.equal(findSample(s, 'nodejs_eventloop_lag_max_seconds'), undefined, 'nothing unprefixed');
  });

  test('expert dispatch: tokens per expert, round trips, calls served by copy, holder failures, served runs', async () => {
    const metrics = new WorkerMetrics();
    let s = await scrape(metrics);
    for (const role of EXPERT_CALL_ROLES) assert.equal(sampleValue(s, 'bora_expert_replica_calls_total', { role }), 0, `${role} starts at 0`);
    metrics.countExpertTokens(2, 5, 3);
    metrics.countExpertTokens(2, 5, 4);
    metrics.countExpertTokens(0, 1, 1);
    metrics.observeExpertDispatch(0.0004);
    metrics.observeExpertDispatch(0.003);
    metrics.observeExpertRun(0.002);
    metrics.countExpertCall('local', 6);
    metrics.countExpertCall('primary');
    metrics.countExpertCall('replica', 2);
    metrics.countExpertHolderFailures(1);
    s = await scrape(metrics);
    assert.equal(sampleValue(s, 'bora_expert_tokens_total', { layer: '2', expert: '5' }), 7);
    assert.equal(sampleValue(s, 'bora_expert_tokens_total', { layer: '0', expert: '1' }), 1);
    assert.equal(sampleValue(s, 'bora_expert_dispatch_seconds_bucket', { le: '0.0005' }), 1);
    assert.equal(sampleValue(s, 'bora_expert_dispatch_seconds_bucket', { le: '0.004' }), 2);
    assert.equal(sampleValue(s, 'bora_expert_run_seconds_count'), 1);
    assert.equal(sampleValue(s, 'bora_expert_replica_calls_total', { role: 'local' }), 6);
    assert.equal(sampleValue(s, 'bora_expert_replica_calls_total', { role: 'primary' }), 1);
    assert.equal(sampleValue(s, 'bora_expert_replica_calls_total', { role: 'replica' }), 2);
    assert.equal(sampleValue(s, 'bora_expert_holder_failures_total'), 1);
  });

  test('instances own separate registries', async () => {
    const a = new WorkerMetrics();
    const b = new WorkerMetrics();
    a.setPlanEpoch(9);
    assert.equal(sampleValue(await scrape(a), 'bora_plan_epoch'), 9);
    assert.equal(sampleValue(await scrape(b), 'bora_plan_epoch'), 0);
  });
});
