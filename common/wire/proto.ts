/** Loads proto/bora/v1 once and exposes the service definitions with the options messages.ts assumes. */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** Largest gRPC message either side accepts; frames are chunked well below it. */
export const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
/** Tensor bytes per frame chunk. */
export const FRAME_CHUNK_BYTES = 2 * 1024 * 1024;

function protoRoot(): string {
  for (let dir = __dirname; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'proto', 'bora', 'v1', 'worker.proto'))) return join(dir, 'proto');
    if (dirname(dir) === dir) throw new Error(`proto/bora/v1 not found above ${__dirname}`);
  }
}

interface BoraPackage {
  Inference: grpc.ServiceClientConstructor;
  Worker: grpc.ServiceClientConstructor;
  WeightSource: grpc.ServiceClientConstructor;
}

let loaded: BoraPackage | undefined;

export function boraProto(): BoraPackage {
  if (loaded !== undefined) return loaded;
  const root = protoRoot();
  const definition = protoLoader.loadSync(['bora/v1/inference.proto', 'bora/v1/worker.proto'], {
    includeDirs: [root],
    keepCase: false,
    longs: Number,
    enums: String,
    bytes: Buffer,
    defaults: true,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as { bora: { v1: BoraPackage } };
  loaded = pkg.bora.v1;
  return loaded;
}

/** Channel options used by every Bora client and server. */
export function channelOptions(keepaliveTimeMs: number, keepaliveTimeoutMs: number): grpc.ChannelOptions {
  return {
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
    'grpc.keepalive_time_ms': keepaliveTimeMs,
    'grpc.keepalive_timeout_ms': keepaliveTimeoutMs,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_ping_interval_without_data_ms': Math.min(keepaliveTimeMs, 1000),
    'grpc.http2.max_pings_without_data': 0,
  };
}

/**
 * One exchange with the Worker service at `address` on a client of its own, closed once `exchange`
 * settles: for occasional calls (status probes, hand-over commits and cache copies), not the data path.
 */
export async function withWorkerClient<C extends grpc.Client, T>(address: string, exchange: (client: C) => Promise<T>): Promise<T> {
  const client = new (boraProto().Worker)(address, grpc.credentials.createInsecure()) as unknown as C;
  try {
    return await exchange(client);
  } finally {
    client.close();
  }
}
