/**
 * A Results subscriber that stops reading, over a real grpc-js server and client: HTTP/2 flow
 * control does not bound what the server holds for it (grpc-js queues every write behind the
 * window), so the hub cuts it off with RESOURCE_EXHAUSTED once its unsent bytes pass the limit,
 * the server's memory stays bounded, and a subscriber that reads gets every result meanwhile.
 */
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { sequenceId } from '../../../common/ids';
import { bindServer, type BoundServer } from '../../../common/wire/bind-server';
import { Reassembler, decodeResult, type ResultBatch } from '../../../common/wire/frames';
import type { ResultFrame } from '../../../common/wire/messages';
import { boraProto, channelOptions, type WorkerClient } from '../../../common/wire/proto';
import { ResultsHub } from '../../../worker/results-hub';

const MiB = 1024 * 1024;
const VOCAB = MiB / 4; // one row of logits is 1 MiB
const LIMIT_BYTES = 4 * MiB;
const RESULTS = 96;

function result(batchId: number): ResultBatch {
  return { planEpoch: 1, batchId, slices: [{ id: sequenceId('s'), startPosition: 0, tokenCount: 1 }], logits: new Float32Array(VOCAB).fill(batchId) };
}

// A full collection before each measurement, so that it counts what is held, not garbage.
setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

const tick = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('ResultsHub over gRPC: a subscriber that does not read', () => {
  let hub: ResultsHub;
  let cutOffs: Error[];
  let bound: BoundServer;
  let client: WorkerClient;
  let stallingClient: WorkerClient;
  before(async () => {
    cutOffs = [];
    hub = new ResultsHub(() => VOCAB, LIMIT_BYTES, (err) => cutOffs.push(err));
    const server = new grpc.Server(channelOptions(10_000, 5_000));
    server.addService(boraProto().Worker.service, { Results: (call: Parameters<ResultsHub['subscribe']>[0]) => hub.subscribe(call) });
    bound = await bindServer(server, '127.0.0.1', 0);
    // A connection each, as two coordinators would have: on one connection the stalled stream
    // would also use up the connection's flow-control window.
    const ownConnection = { ...channelOptions(10_000, 5_000), 'grpc.use_local_subchannel_pool': 1 };
    client = new (boraProto().Worker)(bound.address, grpc.credentials.createInsecure(), ownConnection);
    stallingClient = new (boraProto().Worker)(bound.address, grpc.credentials.createInsecure(), ownConnection);
  });
  after(async () => {
    hub.closeAll();
    client.close();
    stallingClient.close();
    await bound.close();
  });

  test('is cut off with RESOURCE_EXHAUSTED, memory stays bounded, a reading subscriber gets every result', async () => {
    const stalled = stallingClient.results({ planEpoch: 1 });
    const reader = client.results({ planEpoch: 1 });
    const subscribed = (call: grpc.ClientReadableStream<ResultFrame>): Promise<void> => new Promise((resolve) => call.once('metadata', () => resolve()));
    await Promise.all([subscribed(stalled), subscribed(reader)]);

    // The stalled client pauses its stream: grpc-js stops reading it, and HTTP/2 flow control
    // stops the server's bytes; every write after that waits in the server.
    let stalledError: grpc.ServiceError | undefined;
    let stalledAfter: number | undefined;
    stalled.on('data', () => undefined);
    stalled.pause();
    stalled.on('error', (e: grpc.ServiceError) => {
      stalledError = e;
      stalledAfter = published;
    });
    const received: number[] = [];
    const reassembler = new Reassembler<ResultFrame>((f) => f.logits);
    reader.on('data', (frame: ResultFrame) => {
      const done = reassembler.push(frame);
      if (done !== undefined) received.push(decodeResult(done.frame, done.tensor, VOCAB).batchId);
    });
    let readerError: unknown;
    reader.on('error', (e) => (readerError = e));

    collectGarbage();
    const baseBytes = process.memoryUsage().arrayBuffers;
    let peakGrowthBytes = 0;
    let published = 0;
    for (; published < RESULTS; published++) {
      hub.publish(result(published));
      // At the pace the reading subscriber takes them (a coordinator keeps up; this one shares
      // the process and its event loop with the server).
      while (received.length < published - 1 && readerError === undefined) await tick(2);
      collectGarbage();
      peakGrowthBytes = Math.max(peakGrowthBytes, process.memoryUsage().arrayBuffers - baseBytes);
    }
    const deadline = Date.now() + 10_000;
    while ((received.length < RESULTS || stalledError === undefined) && Date.now() < deadline) await tick(20);

    assert.equal(stalledError?.code, grpc.status.RESOURCE_EXHAUSTED, 'the stalled subscriber is cut off');
    assert.equal(readerError, undefined, `reader error after ${received.length} results`);
    assert.equal(cutOffs.length, 1);
    assert.match(cutOffs[0].message, /not reading/);
    // Cut off after the window, what the client had taken in and the limit: not after all of it.
    assert.ok(stalledAfter !== undefined && stalledAfter < RESULTS / 2, `cut off after ${stalledAfter} of ${RESULTS} results`);
    // 96 MiB were published; without the limit the server would hold most of it for the stalled
    // client (this process is both ends, so the client's own buffers count here too).
    assert.ok(peakGrowthBytes < 48 * MiB, `array buffers grew by ${(peakGrowthBytes / MiB).toFixed(1)} MiB`);
    assert.equal(readerError, undefined);
    assert.deepEqual(received, Array.from({ length: RESULTS }, (_, i) => i));
  });
});
