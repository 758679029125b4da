/**
 * The HTTP/2 flow-control window on both ends of a real grpc-js connection (flow-control.ts):
 * how many bytes a sender gets onto the wire towards a receiver that does not read is the
 * window. With Bora's channel options a server's stream (what a stage receives) and a client's
 * stream (what a coordinator receives) both take FLOW_CONTROL_WINDOW_BYTES; a server bound
 * without widenServerWindows keeps grpc-js's 64 KiB, which is what this pins for the installed
 * grpc-js (a version that stopped honouring the internals would fail here).
 */
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { bindServer } from '../../../common/wire/bind-server';
import { FLOW_CONTROL_WINDOW_BYTES } from '../../../common/wire/flow-control';
import { channelOptions } from '../../../common/wire/proto';

const KiB = 1024;
const MiB = 1024 * KiB;
const CHUNK_BYTES = 256 * KiB;
const identity = (b: Buffer): Buffer => b;
const SERVICE = {
  upload: { path: '/bora.test.Window/Upload', requestStream: true, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity },
  download: { path: '/bora.test.Window/Download', requestStream: false, responseStream: true, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity },
} as const;
type WindowClient = grpc.Client & {
  upload(callback: (err: grpc.ServiceError | null) => void): grpc.ClientWritableStream<Buffer>;
  download(request: Buffer): grpc.ClientReadableStream<Buffer>;
};

const tick = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Writes chunks while each write is called back (sent within the window); the bytes sent once that stops. */
async function bytesSentUntilBlocked(write: (chunk: Buffer, sent: () => void) => void, limitBytes: number): Promise<number> {
  let sent = 0;
  let written = 0;
  const chunk = Buffer.alloc(CHUNK_BYTES, 7);
  for (;;) {
    // Keep at most two chunks beyond what was sent, and stop once nothing moves for a while.
    while (written - sent < 2 * CHUNK_BYTES && written < limitBytes) {
      written += CHUNK_BYTES;
      write(chunk, () => (sent += CHUNK_BYTES));
    }
    const before = sent;
    await tick(150);
    if (sent === before || sent >= limitBytes) return sent;
  }
}

async function serve(options: grpc.ChannelOptions, widen: boolean): Promise<{ address: string; close(): Promise<void>; downloads: grpc.ServerWritableStream<Buffer, Buffer>[] }> {
  const downloads: grpc.ServerWritableStream<Buffer, Buffer>[] = [];
  const server = new grpc.Server(options);
  server.addService(SERVICE as unknown as grpc.ServiceDefinition, {
    // Never reads the stream: grpc-js then stops consuming it, and flow control stops the sender.
    upload: () => undefined,
    download: (call: grpc.ServerWritableStream<Buffer, Buffer>) => void downloads.push(call),
  });
  if (widen) {
    const bound = await bindServer(server, '127.0.0.1', 0);
    return { address: bound.address, close: () => bound.close(), downloads };
  }
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return { address: `127.0.0.1:${port}`, close: async () => void server.forceShutdown(), downloads };
}

function client(address: string, options: grpc.ChannelOptions): WindowClient {
  const Client = grpc.makeGenericClientConstructor(SERVICE as unknown as grpc.ServiceDefinition, 'Window');
  return new Client(address, grpc.credentials.createInsecure(), { ...options, 'grpc.use_local_subchannel_pool': 1 }) as unknown as WindowClient;
}

async function uploadWindow(widen: boolean): Promise<number> {
  const server = await serve(channelOptions(10_000, 5_000), widen);
  const c = client(server.address, channelOptions(10_000, 5_000));
  try {
    const call = c.upload(() => undefined);
    return await bytesSentUntilBlocked((chunk, sent) => call.write(chunk, sent), 4 * FLOW_CONTROL_WINDOW_BYTES);
  } finally {
    c.close();
    await server.close();
  }
}

describe('HTTP/2 flow-control window', () => {
  test('channelOptions names the window', () => {
    assert.equal(channelOptions(500, 500)['grpc-node.flow_control_window'], FLOW_CONTROL_WINDOW_BYTES);
  });

  test('a server bound by bindServer takes a whole window from a client before flow control stops it; without widening, 64 KiB', async () => {
    const widened = await uploadWindow(true);
    const plain = await uploadWindow(false);
    // The sender also has the socket's buffers; the window dominates either way.
    assert.ok(widened >= FLOW_CONTROL_WINDOW_BYTES - CHUNK_BYTES, `widened server: ${widened / MiB} MiB sent to a receiver that does not read`);
    assert.ok(widened <= FLOW_CONTROL_WINDOW_BYTES + 8 * MiB, `widened server: ${widened / MiB} MiB: the window still stops the sender`);
    assert.ok(plain <= 4 * MiB, `grpc-js's own server window: ${plain / MiB} MiB sent`);
  });

  test("a client with channelOptions takes a whole window from a server stream before flow control stops the server's writes", async () => {
    const server = await serve(channelOptions(10_000, 5_000), true);
    const c = client(server.address, channelOptions(10_000, 5_000));
    try {
      const call = c.download(Buffer.alloc(1));
      call.on('data', () => undefined);
      call.on('error', () => undefined); // the cancel below
      call.pause();
      while (server.downloads.length === 0) await tick(10);
      const down = server.downloads[0];
      const sent = await bytesSentUntilBlocked((chunk, done) => down.write(chunk, done), 4 * FLOW_CONTROL_WINDOW_BYTES);
      assert.ok(sent >= FLOW_CONTROL_WINDOW_BYTES - CHUNK_BYTES, `${sent / MiB} MiB sent to a client that does not read`);
      assert.ok(sent <= FLOW_CONTROL_WINDOW_BYTES + 8 * MiB, `${sent / MiB} MiB: the window still stops the server`);
      call.cancel();
    } finally {
      c.close();
      await server.close();
    }
  });
});
