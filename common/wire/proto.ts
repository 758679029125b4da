/**
 * Loads proto/bora/v1 once and exposes its services as typed client constructors and service
 * definitions. The types are generated from the same protos with the same loader options
 * (scripts/gen-proto-types.mjs), which is what makes the generated types describe what this
 * loader hands the code; the two option lists must change together.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { ProtoGrpcType as InferenceProto } from './generated/inference';
import type { ProtoGrpcType as WorkerProto } from './generated/worker';
import type { ProtoGrpcType as HealthProto } from './generated/health';
import type { WorkerClient } from './generated/bora/v1/Worker';
import { dialNode, type NodeSecurity } from '../security/node-security';
import { FLOW_CONTROL_WINDOW_BYTES } from './flow-control';

// Each service's typed client (methods in camelCase, as grpc-js adds them) and server handlers
// (keyed by the proto's method names, the name grpc-js looks a handler up by first).
export type { InferenceClient, InferenceHandlers } from './generated/bora/v1/Inference';
export type { WeightSourceClient, WeightSourceHandlers } from './generated/bora/v1/WeightSource';
export type { WorkerClient, WorkerHandlers } from './generated/bora/v1/Worker';
export type { HealthClient, HealthHandlers } from './generated/grpc/health/v1/Health';

/** Largest gRPC message either side accepts unless a server or client names its own receive
 * limit (channelOptions); frames are chunked well below it. */
export const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
/** Tensor bytes per frame chunk. */
export const FRAME_CHUNK_BYTES = 2 * 1024 * 1024;
/** Activation bytes one RunExperts request carries at most: the sender splits larger steps
 * (worker/expert-request-split.ts). */
export const MAX_EXPERT_REQUEST_BYTES = 8 * 1024 * 1024;
/**
 * Largest message a node accepts from another node (worker ports, and what nodes receive on the
 * streams they open): the biggest message between nodes is a RunExperts request or reply
 * (MAX_EXPERT_REQUEST_BYTES of activations plus per-call framing); frame chunks
 * (FRAME_CHUNK_BYTES plus the slices' token ids), KV slices and tensor chunks (1 MiB each) are
 * smaller. Twice the largest leaves room for the framing.
 */
export const MAX_NODE_MESSAGE_BYTES = 2 * MAX_EXPERT_REQUEST_BYTES;

function protoRoot(): string {
  for (let dir = __dirname; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'proto', 'bora', 'v1', 'worker.proto'))) return join(dir, 'proto');
    if (dirname(dir) === dir) throw new Error(`proto/bora/v1 not found above ${__dirname}`);
  }
}

/** Package bora.v1: `new Worker(address, credentials, options)` is a WorkerClient, `Worker.service` its definition. */
export type BoraPackage = InferenceProto['bora']['v1'] & WorkerProto['bora']['v1'];

const SERVICES = ['Inference', 'Worker', 'WeightSource'] as const;

/** Whether the loaded package has every service the generated types promise (checked once, at load). */
function isBoraPackage(pkg: unknown): pkg is { bora: { v1: BoraPackage } } {
  const v1 = (pkg as { bora?: { v1?: Record<string, unknown> } }).bora?.v1;
  return SERVICES.every((name) => typeof v1?.[name] === 'function');
}

let loaded: BoraPackage | undefined;

/** The loader's options; scripts/gen-proto-types.mjs passes the same ones to the type generator. */
const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: Number,
  enums: String,
  bytes: Buffer,
  defaults: true,
  oneofs: true,
};

export function boraProto(): BoraPackage {
  if (loaded !== undefined) return loaded;
  const root = protoRoot();
  const definition = protoLoader.loadSync(['bora/v1/inference.proto', 'bora/v1/worker.proto'], { includeDirs: [root], ...LOADER_OPTIONS });
  const pkg: unknown = grpc.loadPackageDefinition(definition);
  if (!isBoraPackage(pkg)) throw new Error(`${root}/bora/v1 does not define the services ${SERVICES.join(', ')}`);
  loaded = pkg.bora.v1;
  return loaded;
}

/** Package grpc.health.v1 (proto/grpc/health/v1/health.proto): the Health client and service definition. */
export type HealthPackage = HealthProto['grpc']['health']['v1'];

let loadedHealth: HealthPackage | undefined;

function isHealthPackage(pkg: unknown): pkg is HealthProto {
  const v1 = (pkg as { grpc?: { health?: { v1?: Record<string, unknown> } } }).grpc?.health?.v1;
  return typeof v1?.Health === 'function';
}

export function healthProto(): HealthPackage {
  if (loadedHealth !== undefined) return loadedHealth;
  const root = protoRoot();
  const pkg: unknown = grpc.loadPackageDefinition(protoLoader.loadSync(['grpc/health/v1/health.proto'], { includeDirs: [root], ...LOADER_OPTIONS }));
  if (!isHealthPackage(pkg)) throw new Error(`${root}/grpc/health/v1/health.proto does not define grpc.health.v1.Health`);
  loadedHealth = pkg.grpc.health.v1;
  return loadedHealth;
}

/**
 * Channel options used by every Bora client and server; `maxReceiveBytes` is the largest message
 * it accepts (grpc-js limits per server or channel, not per method, so a server that takes
 * untrusted input names the limit of its largest legitimate request). Every stream and connection
 * gets a FLOW_CONTROL_WINDOW_BYTES window (flow-control.ts: grpc-js's 64 KiB default moves one
 * window per round trip; a server gets it from bindServer).
 */
export function channelOptions(keepaliveTimeMs: number, keepaliveTimeoutMs: number, maxReceiveBytes = MAX_MESSAGE_BYTES): grpc.ChannelOptions {
  return {
    'grpc.max_receive_message_length': maxReceiveBytes,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
    'grpc.keepalive_time_ms': keepaliveTimeMs,
    'grpc.keepalive_timeout_ms': keepaliveTimeoutMs,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_ping_interval_without_data_ms': Math.min(keepaliveTimeMs, 1000),
    'grpc.http2.max_pings_without_data': 0,
    'grpc-node.flow_control_window': FLOW_CONTROL_WINDOW_BYTES,
  };
}

/**
 * One exchange with the Worker service at `address` on a client of its own, closed once `exchange`
 * settles: for occasional calls (status probes, hand-over commits and cache copies), not the data path.
 * `security` is the caller's (node-security.ts): with TLS it presents the caller's certificate.
 */
export async function withWorkerClient<T>(address: string, security: NodeSecurity, exchange: (client: WorkerClient) => Promise<T>): Promise<T> {
  const dial = dialNode(security, address);
  const client = new (boraProto().Worker)(address, dial.credentials, {
    'grpc.max_receive_message_length': MAX_NODE_MESSAGE_BYTES,
    'grpc-node.flow_control_window': FLOW_CONTROL_WINDOW_BYTES,
    ...dial.options,
  });
  try {
    return await exchange(client);
  } finally {
    client.close();
  }
}
