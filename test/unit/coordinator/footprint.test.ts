/**
 * A model's footprint follows how the workers hold weights: a bf16 checkpoint on workers that
 * keep the stored precision (native kernels) takes half the bytes per layer of float32 copies,
 * and one worker that widens to float32 makes placement size every stage for float32.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { encodeMember, validateMember, type MemberInfo, type WeightPrecision } from '../../../common/cluster/member';
import { InvalidArgumentError } from '../../../common/errors';
import { workerId } from '../../../common/ids';
import type { ModelConfig } from '../../../common/model/config';
import { modelFootprint, weightBytesFor } from '../../../coordinator/footprint';

function member(id: string, weightPrecision?: WeightPrecision): MemberInfo {
  return {
    id: workerId(id),
    address: '127.0.0.1:7000',
    memoryBytes: 1 << 30,
    accelerators: ['cpu'],
    ...(weightPrecision === undefined ? {} : { weightPrecision }),
    load: { activeSequences: 0, queueDepth: 0 },
    startedAtMs: 0,
  };
}

const mistral = { hiddenSize: 64, numHeads: 4, numKvHeads: 2, headDim: 16, intermediateSize: 128, numLayers: 2, vocabSize: 100, numExperts: 0 } as ModelConfig;
const mixtral = { ...mistral, numExperts: 8 } as ModelConfig;

describe('model footprint', () => {
  test('stored-precision workers of a bf16 checkpoint need half the weight bytes', () => {
    const f32 = modelFootprint(mistral, 4);
    const bf16 = modelFootprint(mistral, 2);
    const norms = 4 * 2 * 64;
    assert.equal(bf16.layerBytes - norms, (f32.layerBytes - norms) / 2);
    assert.equal(bf16.headBytes - 4 * 64, (f32.headBytes - 4 * 64) / 2);
    assert.equal(modelFootprint(mixtral, 2).expertBytes, modelFootprint(mixtral, 4).expertBytes / 2);
  });

  test('the stored width applies only when every worker keeps it', () => {
    assert.equal(weightBytesFor([member('a', 'stored'), member('b', 'stored')], 2), 2);
    assert.equal(weightBytesFor([member('a', 'stored'), member('b', 'f32')], 2), 4);
    assert.equal(weightBytesFor([member('a', 'stored'), member('b')], 2), 4, 'a worker that does not say widens to float32');
    assert.equal(weightBytesFor([], 2), 4);
  });

  test('member records carry weightPrecision through etcd and refuse other values', () => {
    const decoded = validateMember(JSON.parse(encodeMember(member('a', 'stored'))));
    assert.equal(decoded.weightPrecision, 'stored');
    assert.equal(validateMember(JSON.parse(encodeMember(member('b')))).weightPrecision, undefined);
    assert.throws(() => validateMember({ ...member('c'), weightPrecision: 'int4' }), InvalidArgumentError);
  });
});
