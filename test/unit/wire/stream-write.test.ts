/**
 * writeWithBackpressure over real grpc-js: against a client that stops reading, the sender waits
 * (its messages stop being taken, so nothing piles up behind the client's window); the client
 * reading again lets every message through in order; a client that cancels ends the wait.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { bindServer } from '../../../common/wire/bind-server';
import { writeWithBackpressure } from '../../../common/wire/stream-write';
import { eventually } from '../../support/wait';

const MESSAGES = 200;
const MESSAGE_BYTES = 256 * 1024;
const passThrough = (b: Buffer): Buffer => b;
const METHOD: grpc.MethodDefinition<Buffer, Buffer> = {
  path: '/bora.test.Stream/Send',
  requestStream: false,
  responseStream: true,
  requestSerialize: passThrough,
  requestDeserialize: passThrough,
  responseSerialize: passThrough,
  responseDeserialize: passThrough,
};

/** A server that sends MESSAGES messages of MESSAGE_BYTES with backpressure, counting what it handed over. */
async function sender() {
  const progress = { written: 0, stoppedEarly: false, ended: false };
  const server = new grpc.Server();
  server.addService({ Send: METHOD }, {
    Send: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      void (async () => {
        for (let i = 0; i < MESSAGES; i++) {
          const message = Buffer.alloc(MESSAGE_BYTES, i % 256);
          if (!(await writeWithBackpressure(call, message))) {
            progress.stoppedEarly = true;
            return;
          }
          progress.written++;
        }
        progress.ended = true;
        call.end();
      })();
    },
  });
  const bound = await bindServer(server, '127.0.0.1', 0);
  const client = new grpc.Client(bound.address, grpc.credentials.createInsecure());
  return { progress, bound, client, call: () => client.makeServerStreamRequest(METHOD.path, passThrough, passThrough, Buffer.alloc(0)) };
}

describe('writeWithBackpressure', () => {
  test('a client that stops reading stops the sender; reading again lets every message through in order', async () => {
    const s = await sender();
    try {
      const call = s.call();
      const received: number[] = [];
      call.on('data', (m: Buffer) => received.push(m[0]));
      call.pause();
      await eventually(() => s.progress.written > 0, 5000, 'the first messages to go out');
      await new Promise((r) => setTimeout(r, 300));
      const whilePaused = s.progress.written;
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(s.progress.written, whilePaused, 'the sender waits while the client does not read');
      assert.ok(whilePaused < MESSAGES / 2, `only a window's worth went out (${whilePaused} of ${MESSAGES})`);
      const ended = new Promise((resolve) => call.on('end', resolve));
      call.resume();
      await ended;
      assert.equal(received.length, MESSAGES);
      assert.deepEqual(received, Array.from({ length: MESSAGES }, (_, i) => i % 256));
      assert.ok(s.progress.ended && !s.progress.stoppedEarly);
    } finally {
      s.client.close();
      await s.bound.close();
    }
  });

  test('a client that cancels while the sender waits ends the wait', async () => {
    const s = await sender();
    try {
      const call = s.call();
      call.on('data', () => undefined);
      call.on('error', () => undefined);
      call.pause();
      await eventually(() => s.progress.written > 0, 5000, 'the first messages to go out');
      call.cancel();
      await eventually(() => s.progress.stoppedEarly, 5000, 'the sender to stop');
      assert.ok(s.progress.written < MESSAGES);
    } finally {
      s.client.close();
      await s.bound.close();
    }
  });
});
