/** Micro-batches in flight: one per host among the stages by default, or a fixed count within [1, stages]. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InvalidArgumentError } from '../../../common/errors';
import { parseMicroBatches, pipelineDepth } from '../../../coordinator/pipeline-depth';

describe('pipeline depth', () => {
  test('auto: stages on one host keep one micro-batch in flight, stages on separate hosts one each', () => {
    assert.equal(pipelineDepth(['127.0.0.1:7001', '127.0.0.1:7002', '127.0.0.1:7003'], 'auto'), 1);
    assert.equal(pipelineDepth(['10.0.0.1:7000', '10.0.0.2:7000', '10.0.0.3:7000'], 'auto'), 3);
    assert.equal(pipelineDepth(['10.0.0.1:7000', '10.0.0.1:7001', '10.0.0.2:7000'], 'auto'), 2);
    assert.equal(pipelineDepth(['[::1]:7000', '[::1]:7001'], 'auto'), 1);
    assert.equal(pipelineDepth(['worker1:7000', 'worker2:7000'], 'auto'), 2);
  });

  test('a fixed count is kept within 1 .. stages', () => {
    assert.equal(pipelineDepth(['127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:3'], 3), 3);
    assert.equal(pipelineDepth(['127.0.0.1:1', '127.0.0.1:2'], 5), 2);
    assert.equal(pipelineDepth([], 'auto'), 1);
  });

  test('--micro-batches accepts auto or a positive integer', () => {
    assert.equal(parseMicroBatches(undefined), 'auto');
    assert.equal(parseMicroBatches('auto'), 'auto');
    assert.equal(parseMicroBatches('2'), 2);
    for (const bad of ['0', '-1', '1.5', 'many']) assert.throws(() => parseMicroBatches(bad), InvalidArgumentError, bad);
  });
});
