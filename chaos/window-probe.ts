#!/usr/bin/env node
/**
 * A diagnostic for S5: node dist/chaos/window-probe.js [--delay-ms 100] [--messages 5] [--windows-mib 4,8,16]
 *
 * Streams 2 MB messages (the size of one decode step's f32 logits for 16 sequences of a
 * 32000-token vocabulary, what a last stage sends the coordinator) from a grpc-js server to a
 * client through the harness's fault proxy with a fixed one-way delay, once with grpc-js's
 * default HTTP/2 flow-control window (64 KiB) and once with each `grpc-node.flow_control_window`
 * of --windows-mib (default 16, Bora's FLOW_CONTROL_WINDOW_BYTES), and prints when each message
 * arrived and the throughput. With the default window a stream moves one window per round trip,
 * whatever the link's bandwidth. Loopback only.
 */
import * as grpc from '@grpc/grpc-js';
import { intFlag, parseFlags } from '../cli/args';
import { FaultProxy } from './fault-proxy';

const MESSAGE_BYTES = 2 * 1024 * 1024;
const identity = (b: Buffer): Buffer => b;
const SERVICE = {
  stream: { path: '/bora.chaos.WindowProbe/Stream', requestStream: false, responseStream: true, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity },
} as const;

async function measure(windowBytes: number | undefined, delayMs: number, messages: number): Promise<string> {
  const window = windowBytes === undefined ? {} : { 'grpc-node.flow_control_window': windowBytes };
  const server = new grpc.Server({ ...window, 'grpc.max_send_message_length': 4 * MESSAGE_BYTES });
  server.addService(SERVICE as unknown as grpc.ServiceDefinition, {
    stream: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      for (let i = 0; i < messages; i++) call.write(Buffer.alloc(MESSAGE_BYTES, i));
      call.end();
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  const proxy = new FaultProxy({ host: '127.0.0.1', port: 0 }, { host: '127.0.0.1', port });
  const proxyPort = await proxy.start();
  proxy.setFaults({ delayMs, jitterMs: 0 });
  const Client = grpc.makeGenericClientConstructor(SERVICE as unknown as grpc.ServiceDefinition, 'WindowProbe');
  const client = new Client(`127.0.0.1:${proxyPort}`, grpc.credentials.createInsecure(), { ...window, 'grpc.max_receive_message_length': 4 * MESSAGE_BYTES });
  const startMs = performance.now();
  const arrivals: number[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      const call = (client as unknown as { stream(req: Buffer): grpc.ClientReadableStream<Buffer> }).stream(Buffer.alloc(1));
      call.on('data', () => arrivals.push(performance.now() - startMs));
      call.on('end', () => resolve());
      call.on('error', reject);
    });
  } finally {
    client.close();
    await proxy.stop();
    server.forceShutdown();
  }
  const seconds = arrivals[arrivals.length - 1] / 1000;
  return `${windowBytes === undefined ? 'default window (64 KiB)' : `window ${windowBytes / 1048576} MiB`}: ${messages} x 2 MiB arrived at ${arrivals.map((t) => (t / 1000).toFixed(2)).join(', ')} s: ${((messages * MESSAGE_BYTES) / 1e6 / seconds).toFixed(2)} MB/s`;
}

async function main(): Promise<void> {
  const { values } = parseFlags(process.argv.slice(2), { 'delay-ms': { type: 'string' }, messages: { type: 'string' }, 'windows-mib': { type: 'string' } } as const);
  const delayMs = intFlag(values['delay-ms'], '--delay-ms', 100);
  const messages = intFlag(values.messages, '--messages', 5);
  process.stdout.write(`one-way delay ${delayMs} ms (fault proxy on 127.0.0.1)\n`);
  process.stdout.write(`${await measure(undefined, delayMs, messages)}\n`);
  const windows = (values['windows-mib'] ?? '16').split(',').map((w) => Number(w) * 1024 * 1024);
  for (const windowBytes of windows) {
    if (!Number.isFinite(windowBytes) || windowBytes <= 0) throw new Error(`--windows-mib takes sizes in MiB, e.g. 4,8,16`);
    process.stdout.write(`${await measure(windowBytes, delayMs, messages)}\n`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
