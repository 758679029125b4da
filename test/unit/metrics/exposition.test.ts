import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InvalidArgumentError } from '../../../common/errors';
import { findSample, parseExposition, sampleValue } from '../../../common/metrics/exposition';

const TEXT = [
  '# HELP bora_requests_total Generation requests finished, by outcome.',
  '# TYPE bora_requests_total counter',
  'bora_requests_total{outcome="ok"} 3',
  'bora_requests_total{outcome="error"} 0',
  'plain_gauge 1.5e-3',
  'h_bucket{le="+Inf",stage="2"} 7',
  'weird{path="a\\\\b\\"c\\nd",x="",} -Inf 1700000000000',
  'nan_gauge NaN',
  'nan_lower Nan',
  '',
].join('\n');

describe('parseExposition', () => {
  const samples = parseExposition(TEXT);

  test('reads every sample line and skips comments and blank lines', () => {
    assert.deepEqual(
      samples.map((s) => s.name),
      ['bora_requests_total', 'bora_requests_total', 'plain_gauge', 'h_bucket', 'weird', 'nan_gauge', 'nan_lower'],
    );
  });

  test('reads labels (any order, escapes, empty values, trailing comma) and values', () => {
    assert.equal(sampleValue(samples, 'bora_requests_total', { outcome: 'ok' }), 3);
    assert.equal(sampleValue(samples, 'bora_requests_total', { outcome: 'error' }), 0);
    assert.equal(sampleValue(samples, 'plain_gauge'), 0.0015);
    assert.equal(sampleValue(samples, 'h_bucket', { stage: '2', le: '+Inf' }), 7);
    assert.equal(sampleValue(samples, 'weird', { path: 'a\\b"c\nd', x: '' }), -Infinity);
    assert.ok(Number.isNaN(sampleValue(samples, 'nan_gauge')));
    assert.ok(Number.isNaN(sampleValue(samples, 'nan_lower')), 'prom-client writes NaN as Nan');
  });

  test('matches label sets exactly: a subset is not a match', () => {
    assert.equal(findSample(samples, 'bora_requests_total'), undefined);
    assert.equal(findSample(samples, 'h_bucket', { le: '+Inf' }), undefined);
    assert.throws(() => sampleValue(samples, 'bora_requests_total', { outcome: 'deadline' }), InvalidArgumentError);
  });

  test('rejects malformed lines with the line number', () => {
    assert.throws(() => parseExposition('ok 1\nbad{x="1} 2'), /line 2/);
    assert.throws(() => parseExposition('m{x="\\q"} 1'), InvalidArgumentError);
    assert.throws(() => parseExposition('m 1 2 3'), InvalidArgumentError);
    assert.throws(() => parseExposition('m abc'), InvalidArgumentError);
    assert.throws(() => parseExposition('m{x="1",x="2"} 1'), /twice/);
  });
});
