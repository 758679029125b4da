/**
 * A worker port takes messages up to MAX_NODE_MESSAGE_BYTES (the largest message one node sends
 * another), not 64 MiB: a larger one is refused with RESOURCE_EXHAUSTED before it is decoded, and
 * the worker keeps serving.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { workerId } from '../../../common/ids';
import { MAX_NODE_MESSAGE_BYTES, boraProto, type WorkerClient } from '../../../common/wire/proto';
import { StageHost } from '../../../worker/stage-host';
import { startWorkerServer, type BoundServer } from '../../../worker/worker-server';

describe('a worker port refuses messages larger than any node sends', () => {
  let server: BoundServer;
  let host: StageHost;
  let client: WorkerClient;
  before(async () => {
    host = new StageHost(workerId('w1'), { drainTimeoutMs: 1000, keepaliveTimeMs: 1000, keepaliveTimeoutMs: 1000 });
    server = await startWorkerServer(host, '127.0.0.1', 0, { timeMs: 1000, timeoutMs: 1000 });
    client = new (boraProto().Worker)(server.address, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': 4 * MAX_NODE_MESSAGE_BYTES });
  });
  after(async () => {
    client.close();
    await server.close();
  });

  const runExperts = (bytes: number): Promise<grpc.ServiceError | null> =>
    new Promise((resolve) =>
      client.RunExperts({ planEpoch: 1, layer: 0, calls: [{ expert: 0, x: { dtype: 'DTYPE_F32', shape: [bytes / 4 / 1024, 1024], data: Buffer.alloc(bytes) } }] }, { deadline: Date.now() + 10_000 }, (err) => resolve(err)),
    );

  test('one byte-ish over the limit: RESOURCE_EXHAUSTED; then the worker still answers', async () => {
    const over = await runExperts(MAX_NODE_MESSAGE_BYTES + 4096);
    assert.equal(over?.code, grpc.status.RESOURCE_EXHAUSTED, over?.details);
    const status = await new Promise<grpc.ServiceError | null>((resolve) => client.Status({}, { deadline: Date.now() + 5000 }, (err) => resolve(err)));
    assert.equal(status, null, 'Status after the refusal');
  });

  test('a request under the limit reaches the handler (refused there: no experts are held)', async () => {
    const under = await runExperts(MAX_NODE_MESSAGE_BYTES - 64 * 1024);
    assert.notEqual(under?.code, grpc.status.RESOURCE_EXHAUSTED, under?.details);
    assert.ok(under !== null, 'this worker holds no experts');
  });
});
