/**
 * The generated message types (scripts/gen-proto-types.mjs) against what the loader in proto.ts
 * really hands the code: messages are serialized and parsed with the services' own method
 * definitions, and each decoded value is held in a variable of the type the generated `__Output`
 * type gives it, then checked at run time. uint64 past 2^32 is a number (not a Long or a string),
 * bytes are Buffers, enums their names, absent fields their defaults, and a oneof names its field.
 * A mismatch in either direction (a loader option changed on one side only) fails here.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { boraProto } from '../../../common/wire/proto';

const BIG = 2 ** 40 + 3;

describe('generated wire types match the loader', () => {
  test('uint64 decodes as a number, past 2^32 too', () => {
    const status = boraProto().Worker.service.Status;
    const reply = status.responseDeserialize(status.responseSerialize({ workerId: 'w', planEpoch: BIG, kvCacheBytes: BIG + 1, expertTokens: [{ layer: 1, expert: 2, tokens: BIG }] }));
    const planEpoch: number = reply.planEpoch;
    const kvCacheBytes: number = reply.kvCacheBytes;
    const tokens: number = reply.expertTokens[0].tokens;
    assert.equal(typeof planEpoch, 'number');
    assert.equal(planEpoch, BIG);
    assert.equal(kvCacheBytes, BIG + 1);
    assert.equal(tokens, BIG);
  });

  test('bytes decode as Buffers and enums as their names', () => {
    const fetch = boraProto().WeightSource.service.FetchTensor;
    const chunk = fetch.responseDeserialize(
      fetch.responseSerialize({ dtype: 'DTYPE_BF16', shape: [2, 3], totalBytes: BIG, offset: BIG - 12, data: Buffer.from([1, 2, 3]), sha256: Buffer.alloc(32, 7) }),
    );
    const data: Buffer = chunk.data;
    const sha256: Buffer = chunk.sha256;
    const dtype: 'DTYPE_UNSPECIFIED' | 'DTYPE_F32' | 'DTYPE_F16' | 'DTYPE_BF16' | 'DTYPE_Q8_0' | 'DTYPE_Q4_0' | 'DTYPE_Q4_K' | 'DTYPE_Q6_K' = chunk.dtype;
    assert.ok(Buffer.isBuffer(data));
    assert.deepEqual([...data], [1, 2, 3]);
    assert.ok(Buffer.isBuffer(sha256));
    assert.equal(sha256.byteLength, 32);
    assert.equal(dtype, 'DTYPE_BF16');
    assert.equal(chunk.totalBytes, BIG);
    assert.equal(chunk.offset, BIG - 12);

    const kv = boraProto().Worker.service.FetchKv;
    const slice = kv.responseDeserialize(kv.responseSerialize({ sequenceId: 's', positions: [0, -1], keys: Buffer.alloc(8, 1), values: Buffer.alloc(8, 2) }));
    assert.ok(Buffer.isBuffer(slice.keys) && Buffer.isBuffer(slice.values));
    assert.deepEqual(slice.positions, [0, -1]);
  });

  test('absent fields decode as their defaults; an absent message as null', () => {
    const forward = boraProto().Worker.service.Forward;
    const frame = forward.requestDeserialize(forward.requestSerialize({}));
    assert.deepEqual(frame, {
      planEpoch: 0,
      batchId: 0,
      chunkIndex: 0,
      chunkCount: 0,
      slices: [],
      hidden: null,
      stageIndex: 0,
      error: '',
      code: 0,
      etcdOutage: false,
      prefixEvicted: [],
      embed: false,
    });
    const empty = boraProto().WeightSource.service.FetchTensor.responseDeserialize(Buffer.alloc(0));
    assert.ok(Buffer.isBuffer(empty.data) && empty.data.byteLength === 0);
    assert.equal(empty.dtype, 'DTYPE_UNSPECIFIED');
  });

  test('a oneof names the field that is set', () => {
    const generate = boraProto().Inference.service.Generate;
    const request = generate.requestDeserialize(generate.requestSerialize({ tokenIds: { ids: [1, 2] }, maxTokens: 4 }));
    const prompt: 'text' | 'tokenIds' | 'promptHandle' | undefined = request.prompt;
    assert.equal(prompt, 'tokenIds');
    assert.deepEqual(request.tokenIds?.ids, [1, 2]);
    assert.equal(request.sampling, null);

    const event = generate.responseDeserialize(generate.responseSerialize({ finish: { reason: 'FINISH_REASON_STOP', totalMs: 1.5 } }));
    assert.equal(event.event, 'finish');
    assert.equal(event.finish?.reason, 'FINISH_REASON_STOP');
    assert.equal(event.token, undefined);
  });
});
