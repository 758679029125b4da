/**
 * The watchdog's probe connections (probe-channels.ts) against real grpc-js servers: a worker
 * that answers Status is alive; one that never answers is not, once the deadline passes; every
 * probe of a worker rides the one connection kept open (the server sees one peer); a connection
 * to an address no longer retained is closed, and the next probe dials afresh.
 */
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { bindServer, type BoundServer } from '../../../common/wire/bind-server';
import { boraProto } from '../../../common/wire/proto';
import { ProbeChannels } from '../../../coordinator/probe-channels';

type StatusCall = grpc.ServerUnaryCall<object, object>;

async function statusServer(answer: boolean, peers: string[]): Promise<BoundServer> {
  const server = new grpc.Server();
  server.addService(boraProto().Worker.service, {
    Status: (call: StatusCall, callback: grpc.sendUnaryData<object>) => {
      peers.push(call.getPeer());
      if (answer) callback(null, { workerId: 'w1', serving: true });
      // else: never answers, as a paused process would not
    },
  });
  return bindServer(server, '127.0.0.1', 0);
}

describe('ProbeChannels', () => {
  const livePeers: string[] = [];
  const silentPeers: string[] = [];
  let live: BoundServer;
  let silent: BoundServer;
  const channels = new ProbeChannels();
  before(async () => {
    live = await statusServer(true, livePeers);
    silent = await statusServer(false, silentPeers);
  });
  after(async () => {
    channels.close();
    await Promise.all([live.close(), silent.close()]);
  });

  test('a worker that answers is alive, on one connection kept open', async () => {
    assert.equal(await channels.answers(live.address, 2000), true);
    assert.equal(await channels.answers(live.address, 2000), true);
    assert.equal(livePeers.length, 2);
    assert.equal(livePeers[0], livePeers[1], 'both probes came from the same client socket');
  });

  test('a worker that never answers is not alive once the deadline passes', async () => {
    const startMs = performance.now();
    assert.equal(await channels.answers(silent.address, 300), false);
    assert.ok(performance.now() - startMs >= 250, 'not before the deadline');
    assert.equal(silentPeers.length, 1, 'the probe reached the worker');
  });

  test('an address no longer retained loses its connection; the next probe dials a new one', async () => {
    channels.retain(new Set([silent.address]));
    assert.equal(await channels.answers(live.address, 2000), true);
    assert.equal(livePeers.length, 3);
    assert.notEqual(livePeers[2], livePeers[0], 'a new client socket');
  });
});
