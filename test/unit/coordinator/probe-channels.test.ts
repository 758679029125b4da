/**
 * The watchdog's probe connections (probe-channels.ts) against real grpc-js servers: a worker
 * that answers Status answered; one that never answers is silent once the deadline passes; a
 * closed port is refused, well before the deadline; once the kept connection is up every probe
 * of a worker rides it (the server sees one peer), and while it is not, a probe also goes out on a
 * one-off connection (two peers); a connection to an address no longer retained is closed, and the
 * next probe dials afresh.
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

  test('a worker that answers is alive; the first probe dials twice, the later ones ride the one connection kept open', async () => {
    assert.equal(await channels.answers(live.address, 2000), 'answered');
    // The one-off call may still be in flight when the first answer comes back.
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(livePeers.length, 2, 'kept connection not yet up: a one-off connection too');
    assert.notEqual(livePeers[0], livePeers[1]);
    assert.equal(await channels.answers(live.address, 2000), 'answered');
    assert.equal(await channels.answers(live.address, 2000), 'answered');
    assert.equal(livePeers.length, 4);
    assert.equal(livePeers[2], livePeers[3], 'both later probes came from the same client socket');
    assert.ok(livePeers.slice(0, 2).includes(livePeers[2]), 'the kept one');
  });

  test('a worker that never answers is not alive once the deadline passes', async () => {
    const startMs = performance.now();
    assert.equal(await channels.answers(silent.address, 300), 'silent');
    assert.ok(performance.now() - startMs >= 250, 'not before the deadline');
    assert.ok(silentPeers.length >= 1, 'the probe reached the worker');
  });

  test('a port where nothing listens is refused, before the deadline', async () => {
    const gone = await statusServer(true, []);
    await gone.close();
    const startMs = performance.now();
    assert.equal(await channels.answers(gone.address, 10_000), 'refused');
    assert.ok(performance.now() - startMs < 5000, `refused after ${(performance.now() - startMs).toFixed(0)} ms`);
  });

  test('an address no longer retained loses its connection; the next probe dials a new one', async () => {
    channels.retain(new Set([silent.address]));
    assert.equal(await channels.answers(live.address, 2000), 'answered');
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(livePeers.length, 6);
    assert.ok(!livePeers.slice(4).includes(livePeers[2]), 'new client sockets');
  });
});
