/**
 * A WeightSource that fetches tensors from the coordinator over gRPC, for a worker that cannot
 * see the checkpoint directory. Each tensor is reassembled from its chunks and checked: byte
 * count, SHA-256, dtype, and the shape the model config implies.
 */
import { createHash } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { CheckpointError } from '../common/errors';
import type { RawTensor } from '../common/model/checkpoint';
import { parseModelConfig, type ModelConfig } from '../common/model/config';
import { tensorBytes, toFloat32, type TensorDtype } from '../common/model/dtype';
import type { WeightSource } from '../common/model/weight-source';
import { digestMismatchError } from '../common/models/weight-digests';
import type { ExpectedDigests } from './engine-protocol';
import { INSECURE, dialNode, type NodeSecurity } from '../common/security/node-security';
import { fromServiceError } from '../common/wire/grpc-status';
import type { ConfigReply, TensorChunk, WireDType } from '../common/wire/messages';
import { MAX_NODE_MESSAGE_BYTES, boraProto, channelOptions, type WeightSourceClient } from '../common/wire/proto';

const STORAGE: Partial<Record<WireDType, TensorDtype>> = {
  DTYPE_F32: 'F32',
  DTYPE_F16: 'F16',
  DTYPE_BF16: 'BF16',
  DTYPE_Q8_0: 'Q8_0',
  DTYPE_Q4_0: 'Q4_0',
  DTYPE_Q4_K: 'Q4_K',
  DTYPE_Q6_K: 'Q6_K',
};
const FETCH_TIMEOUT_MS = 120_000;

export class RemoteWeightSource implements WeightSource {
  private constructor(
    private readonly client: WeightSourceClient,
    readonly address: string,
    readonly modelId: string,
    readonly config: ModelConfig,
    private readonly expected: ExpectedDigests | undefined,
  ) {}

  /** `security`: the worker's; with TLS the coordinator serves weights only to worker certificates. */
  /** `expected`: the registered version's tensor digests; each fetched tensor must match its own. */
  static async connect(address: string, modelId: string, security: NodeSecurity = INSECURE, expected?: ExpectedDigests): Promise<RemoteWeightSource> {
    const WeightSource = boraProto().WeightSource;
    const dial = dialNode(security, address);
    const client = new WeightSource(address, dial.credentials, { ...channelOptions(10_000, 5_000, MAX_NODE_MESSAGE_BYTES), ...dial.options });
    const reply = await new Promise<ConfigReply>((resolve, reject) =>
      client.fetchConfig({ model: modelId }, { deadline: Date.now() + 10_000 }, (err, r) => (err ? reject(fromServiceError(err)) : resolve(r!))),
    );
    return new RemoteWeightSource(client, address, modelId, parseModelConfig(reply.configJson, `${address}/${modelId}/config.json`), expected);
  }

  readRaw(name: string, expectedShape?: readonly number[]): Promise<RawTensor> {
    const where = `${this.address}/${this.modelId}`;
    return new Promise<RawTensor>((resolve, reject) => {
      const call = this.client.fetchTensor({ model: this.modelId, name }, { deadline: Date.now() + FETCH_TIMEOUT_MS });
      let bytes: Uint8Array | undefined;
      let dtype: TensorDtype | undefined;
      let shape: number[] = [];
      let received = 0;
      let digest: Buffer | undefined;
      const hash = createHash('sha256');
      call.on('data', (chunk: TensorChunk) => {
        if (bytes === undefined) {
          dtype = STORAGE[chunk.dtype];
          shape = chunk.shape;
          bytes = new Uint8Array(new ArrayBuffer(chunk.totalBytes));
        }
        if (chunk.offset !== received || received + chunk.data.byteLength > bytes.byteLength) {
          call.cancel();
          reject(new CheckpointError(where, `chunk at offset ${chunk.offset} does not follow byte ${received}`, { tensor: name }));
          return;
        }
        bytes.set(chunk.data, received);
        hash.update(chunk.data);
        received += chunk.data.byteLength;
        if (chunk.sha256.byteLength > 0) digest = chunk.sha256;
      });
      call.on('error', (err: grpc.ServiceError) => reject(fromServiceError(err)));
      call.on('end', () => {
        if (bytes === undefined || dtype === undefined) return reject(new CheckpointError(where, 'no data or unknown dtype received', { tensor: name }));
        if (received !== bytes.byteLength) return reject(new CheckpointError(where, `received ${received} of ${bytes.byteLength} bytes`, { tensor: name }));
        if (tensorBytes(dtype, shape) !== bytes.byteLength) {
          return reject(new CheckpointError(where, `${bytes.byteLength} bytes do not hold a [${shape.join(', ')}] ${dtype} tensor`, { tensor: name }));
        }
        const actual = hash.digest();
        if (digest === undefined || !actual.equals(digest)) return reject(new CheckpointError(where, 'SHA-256 mismatch: the tensor was corrupted in transit', { tensor: name }));
        if (this.expected !== undefined) {
          const registered = this.expected.tensors[name];
          if (registered === undefined) return reject(new CheckpointError(where, `is not a tensor of the registered version ${this.expected.ref}`, { tensor: name }));
          if (registered !== actual.toString('hex')) return reject(digestMismatchError({ file: where, expectedSha256: registered, actualSha256: actual.toString('hex') }, this.expected.ref, name));
        }
        if (expectedShape !== undefined && (shape.length !== expectedShape.length || shape.some((d, i) => d !== expectedShape[i]))) {
          return reject(new CheckpointError(where, `shape [${shape.join(', ')}] does not match the expected [${expectedShape.join(', ')}]`, { tensor: name }));
        }
        resolve({ dtype, shape, bytes });
      });
    });
  }

  async readF32(name: string, expectedShape?: readonly number[]): Promise<Float32Array> {
    const raw = await this.readRaw(name, expectedShape);
    return toFloat32(raw.bytes, raw.dtype);
  }

  close(): void {
    this.client.close();
  }
}
