import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { INTER_TOKEN_BUCKETS_SECONDS } from '../../../common/metrics/buckets';
import { CoordinatorMetrics, REQUEST_OUTCOMES } from '../../../coordinator/coordinator-metrics';
import { type MetricSample, parseExposition, sampleValue } from '../../../common/metrics/exposition';

async function scrape(metrics: CoordinatorMetrics): Promise<MetricSample[]> {
  return parseExposition(await metrics.registry.metrics());
}

/** Cumulative count of histogram `name` at bucket bound `le`. */
function bucket(samples: MetricSample[], name: string, le: string, labels: Record<string, string> = {}): number {
  return sampleValue(samples, `${name}_bucket`, { ...labels, le });
}

describe('CoordinatorMetrics', () => {
  test('counts requests by outcome, every outcome present from the start', async () => {
    const metrics = new CoordinatorMetrics();
    let samples = await scrape(metrics);
    for (const outcome of REQUEST_OUTCOMES) assert.equal(sampleValue(samples, 'bora_requests_total', { outcome }), 0);
    metrics.countRequest('ok');
    metrics.countRequest('ok');
    metrics.countRequest('deadline');
    metrics.countRequest('invalid');
    samples = await scrape(metrics);
    assert.equal(sampleValue(samples, 'bora_requests_total', { outcome: 'ok' }), 2);
    assert.equal(sampleValue(samples, 'bora_requests_total', { outcome: 'deadline' }), 1);
    assert.equal(sampleValue(samples, 'bora_requests_total', { outcome: 'invalid' }), 1);
    assert.equal(sampleValue(samples, 'bora_requests_total', { outcome: 'cancelled' }), 0);
  });

  test('latency histograms put observations in the right buckets', async () => {
    const metrics = new CoordinatorMetrics();
    metrics.observeTimeToFirstToken(0.04);
    metrics.observeTimeToFirstToken(0.3);
    metrics.observeTimeToFirstToken(120);
    for (const seconds of [0.004, 0.018, 0.02, 0.6]) metrics.observeInterToken(seconds);
    metrics.observeRecovery(2.5);
    const s = await scrape(metrics);

    const ttft = 'bora_time_to_first_token_seconds';
    assert.equal(bucket(s, ttft, '0.025'), 0);
    assert.equal(bucket(s, ttft, '0.05'), 1);
    assert.equal(bucket(s, ttft, '0.35'), 2);
    assert.equal(bucket(s, ttft, '60'), 2);
    assert.equal(bucket(s, ttft, '+Inf'), 3);
    assert.equal(sampleValue(s, `${ttft}_count`), 3);
    assert.ok(Math.abs(sampleValue(s, `${ttft}_sum`) - 120.34) < 1e-9);

    const itl = 'bora_inter_token_seconds';
    assert.equal(bucket(s, itl, '0.005'), 1);
    assert.equal(bucket(s, itl, '0.01'), 1);
    assert.equal(bucket(s, itl, '0.02'), 3, 'le is inclusive: 0.02 lands in the 0.02 bucket');
    assert.equal(bucket(s, itl, '0.5'), 3);
    assert.equal(bucket(s, itl, '1'), 4);
    // Every declared bound is exposed, plus +Inf.
    const bounds = s.filter((x) => x.name === `${itl}_bucket`).map((x) => x.labels.le);
    assert.deepEqual(bounds, [...INTER_TOKEN_BUCKETS_SECONDS.map(String), '+Inf']);

    assert.equal(bucket(s, 'bora_recovery_seconds', '2'), 0);
    assert.equal(bucket(s, 'bora_recovery_seconds', '3'), 1);
    // Expert metrics are the workers' (worker-metrics.ts): a coordinator exposes none.
    assert.equal(s.some((x) => x.name.startsWith('bora_expert_')), false);
  });

  test('generated tokens: a counter and a 10 s tokens/s gauge computed at scrape time', async () => {
    const clock = { ms: 1_000 };
    const metrics = new CoordinatorMetrics({ now: () => clock.ms });
    metrics.countGeneratedTokens(40);
    clock.ms = 6_000;
    metrics.countGeneratedTokens(60);
    let s = await scrape(metrics);
    assert.equal(sampleValue(s, 'bora_generated_tokens_total'), 100);
    assert.equal(sampleValue(s, 'bora_tokens_per_second'), 10); // 100 tokens / 10 s

    clock.ms = 11_500; // the 40 at t = 1 s have left the window
    s = await scrape(metrics);
    assert.equal(sampleValue(s, 'bora_tokens_per_second'), 6);
    assert.equal(sampleValue(s, 'bora_generated_tokens_total'), 100, 'the counter never forgets');

    clock.ms = 30_000;
    s = await scrape(metrics);
    assert.equal(sampleValue(s, 'bora_tokens_per_second'), 0);
  });

  test('gauges hold the last value set; queue depth is read from its source at each scrape', async () => {
    const metrics = new CoordinatorMetrics();
    const queue = { active: 7, waiting: 3 };
    metrics.readQueueFrom(() => queue);
    metrics.setMembers(4);
    metrics.setPlanEpoch(12);
    queue.active = 5;
    metrics.setMembers(3);
    const s = await scrape(metrics);
    assert.equal(sampleValue(s, 'bora_active_sequences'), 5);
    assert.equal(sampleValue(s, 'bora_waiting_requests'), 3);
    assert.equal(sampleValue(s, 'bora_members'), 3);
    assert.equal(sampleValue(s, 'bora_plan_epoch'), 12);
  });

  test('reshards by reason and resumed sequences', async () => {
    const metrics = new CoordinatorMetrics();
    metrics.countReshard('leave');
    metrics.countReshard('leave');
    metrics.countReshard('join');
    metrics.countResumedSequences(5);
    metrics.countResumedSequences(2);
    const s = await scrape(metrics);
    assert.equal(sampleValue(s, 'bora_reshards_total', { reason: 'leave' }), 2);
    assert.equal(sampleValue(s, 'bora_reshards_total', { reason: 'join' }), 1);
    assert.equal(sampleValue(s, 'bora_reshards_total', { reason: 'operator' }), 0);
    assert.equal(sampleValue(s, 'bora_resumed_sequences_total'), 7);
  });

  test('a finished generation feeds request duration, tokens per request and resumes', async () => {
    const metrics = new CoordinatorMetrics({ processMetrics: false });
    metrics.observeGeneration({ type: 'finish', reason: 'length', text: '', promptTokens: 12, generatedTokens: 40, timeToFirstTokenMs: 300, totalMs: 2500, resumes: 2 });
    metrics.observeGeneration({ type: 'finish', reason: 'stop', text: '', promptTokens: 3, generatedTokens: 1, timeToFirstTokenMs: 40, totalMs: 40, resumes: 0 });
    const s = await scrape(metrics);
    assert.equal(sampleValue(s, 'bora_request_duration_seconds_count'), 2);
    assert.equal(bucket(s, 'bora_request_duration_seconds', '0.05'), 1);
    assert.equal(bucket(s, 'bora_request_duration_seconds', '2'), 1);
    assert.equal(bucket(s, 'bora_request_duration_seconds', '3'), 2);
    assert.ok(Math.abs(sampleValue(s, 'bora_request_duration_seconds_sum') - 2.54) < 1e-9);
    assert.equal(sampleValue(s, 'bora_request_tokens_sum', { kind: 'prompt' }), 15);
    assert.equal(sampleValue(s, 'bora_request_tokens_sum', { kind: 'generated' }), 41);
    assert.equal(bucket(s, 'bora_request_tokens', '32', { kind: 'generated' }), 1);
    assert.equal(bucket(s, 'bora_request_tokens', '64', { kind: 'generated' }), 2);
    assert.equal(sampleValue(s, 'bora_resumes_total'), 2);
    assert.equal(sampleValue(s, 'bora_resumed_sequences_total'), 1);
  });

  test('queue wait lands in its histogram', async () => {
    const metrics = new CoordinatorMetrics({ processMetrics: false });
    metrics.observeQueueWait(0);
    metrics.observeQueueWait(0.2);
    const s = await scrape(metrics);
    assert.equal(bucket(s, 'bora_queue_wait_seconds', '0.0005'), 1);
    assert.equal(bucket(s, 'bora_queue_wait_seconds', '0.25'), 2);
  });

  test('build info names the version and model; process metrics carry the bora_coordinator_ prefix', async () => {
    const s = await scrape(new CoordinatorMetrics({ model: 'tiny-mistral' }));
    const info = s.find((x) => x.name === 'bora_build_info');
    assert.ok(info !== undefined);
    assert.equal(info.value, 1);
    assert.equal(info.labels.model, 'tiny-mistral');
    assert.equal(info.labels.role, 'coordinator');
    assert.match(info.labels.version, /^\d+\.\d+\.\d+/);
    assert.ok(sampleValue(s, 'bora_coordinator_process_cpu_seconds_total') > 0);
    assert.ok(sampleValue(s, 'bora_coordinator_process_resident_memory_bytes') > 0);
  });

  test('instances own separate registries', async () => {
    const a = new CoordinatorMetrics();
    const b = new CoordinatorMetrics();
    a.countRequest('error');
    assert.equal(sampleValue(await scrape(a), 'bora_requests_total', { outcome: 'error' }), 1);
    assert.equal(sampleValue(await scrape(b), 'bora_requests_total', { outcome: 'error' }), 0);
  });

  test('the exposition carries HELP and TYPE for every metric', async () => {
    const text = await new CoordinatorMetrics().registry.metrics();
    for (const [name, type] of [
      ['bora_requests_total', 'counter'],
      ['bora_time_to_first_token_seconds', 'histogram'],
      ['bora_tokens_per_second', 'gauge'],
      ['bora_reshards_total', 'counter'],
    ]) {
      assert.match(text, new RegExp(`^# TYPE ${name} ${type}$`, 'm'));
      assert.match(text, new RegExp(`^# HELP ${name} \\S`, 'm'));
    }
  });
});
