/**
 * A Forward sender that never reads its acks is cut off with RESOURCE_EXHAUSTED once the acks
 * waiting for it pass the limit (the worker would otherwise queue one per frame it sends, without
 * limit); a sender that reads its acks is unaffected. Real grpc-js client and server.
 */
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { workerId } from '../../../common/ids';
import { bindServer, type BoundServer } from '../../../common/wire/bind-server';
import type { ForwardAck } from '../../../common/wire/messages';
import { boraProto, channelOptions, type WorkerClient } from '../../../common/wire/proto';
import { ResultsHub } from '../../../worker/results-hub';
import { OPEN_WORKER_ACCESS } from '../../../worker/worker-access';
import { workerServiceHandlers, type WorkerState } from '../../../worker/worker-service';

const LIMIT_BYTES = 32 * 1024;
/** Frames of a stale epoch: each is answered with an error ack of about a hundred bytes. */
const FRAMES = 5000;
const HTTP2_DEFAULT_WINDOW_BYTES = 65_535;

describe('Forward: a sender that does not read its acks', () => {
  let bound: BoundServer;
  const cutOffs: string[] = [];
  const clients: WorkerClient[] = [];
  before(async () => {
    const state: WorkerState = {
      workerId: workerId('w1'),
      servingEpoch: () => 1,
      isServing: () => true,
      runnerFor: () => undefined,
      runners: () => [],
      experts: () => undefined,
      results: new ResultsHub(() => 0),
      onRejected: () => undefined,
      onStreamCutOff: (stream) => cutOffs.push(stream),
    };
    const server = new grpc.Server(channelOptions(10_000, 5_000));
    server.addService(boraProto().Worker.service, workerServiceHandlers(state, OPEN_WORKER_ACCESS, LIMIT_BYTES));
    bound = await bindServer(server, '127.0.0.1', 0);
  });
  after(async () => {
    for (const c of clients) c.close();
    await bound.close();
  });

  // What a sender that stops reading takes in before the worker's writes stop is its own receive
  // window (a Bora node asks FLOW_CONTROL_WINDOW_BYTES, 16 MiB, proto.ts; a rogue sender may ask
  // anything); the worker holds at most the limit beyond it either way. The stalled sender asks
  // HTTP/2's default 64 KiB, so that a few thousand acks reach the limit.
  const open = (windowBytes?: number): grpc.ClientDuplexStream<object, ForwardAck> => {
    const window = windowBytes === undefined ? {} : { 'grpc-node.flow_control_window': windowBytes };
    const client = new (boraProto().Worker)(bound.address, grpc.credentials.createInsecure(), { ...channelOptions(10_000, 5_000), 'grpc.use_local_subchannel_pool': 1, ...window });
    clients.push(client);
    return client.forward();
  };
  const staleFrame = (batchId: number): object => ({ planEpoch: 2, batchId, chunkIndex: 0, chunkCount: 1, slices: [], stageIndex: 0 });

  test('is cut off with RESOURCE_EXHAUSTED; a sender that reads gets every ack', async () => {
    const stalled = open(HTTP2_DEFAULT_WINDOW_BYTES);
    stalled.on('data', () => undefined);
    stalled.pause();
    const stalledError = new Promise<grpc.ServiceError>((resolve) => stalled.on('error', resolve));
    const reader = open();
    let acks = 0;
    reader.on('data', () => acks++);
    let readerError: unknown;
    reader.on('error', (e) => (readerError = e));

    for (let i = 0; i < FRAMES; i++) {
      stalled.write(staleFrame(i));
      reader.write(staleFrame(i));
      if (i % 100 === 99) await new Promise((r) => setTimeout(r, 5));
    }
    const err = await Promise.race([stalledError, new Promise<undefined>((r) => setTimeout(() => r(undefined), 15_000))]);
    assert.equal(err?.code, grpc.status.RESOURCE_EXHAUSTED, 'the stalled sender is cut off');
    const deadline = Date.now() + 10_000;
    while (acks < FRAMES && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(readerError, undefined);
    assert.equal(acks, FRAMES);
    assert.deepEqual(cutOffs, ['Forward']);
    reader.end();
  });
});
