/**
 * Serves the checkpoint to workers that cannot see it: config.json (for a GGUF file, the one its
 * metadata implies), and any tensor as stored (quantized tensors as their blocks) streamed in
 * chunks with a SHA-256 of the whole on the last chunk, so a fresh machine can join with no copy
 * of the model.
 *
 * With TLS the checkpoint goes only to worker (and admin) certificates from the cluster CA: the
 * coordinator's port also serves the client API, where a client certificate is optional, so this
 * service checks the peer certificate itself (`access`). FetchConfig is guarded alike: only
 * workers need it.
 */
import { createHash } from 'node:crypto';
import { NotFoundError } from '../common/errors';
import { modelConfigJson, type ModelCheckpoint } from '../common/model/open-model';
import type { TensorChunk, WireDType } from '../common/wire/messages';
import type { TensorDtype } from '../common/model/dtype';
import { failCall, toServiceError } from '../common/wire/grpc-status';
import type { NodeRole } from '../common/security/identity';
import { NodeAccess } from '../common/security/node-access';
import { INSECURE } from '../common/security/node-security';
import type { WeightSourceHandlers } from '../common/wire/proto';
import { writeWithBackpressure } from '../common/wire/stream-write';

export const TENSOR_CHUNK_BYTES = 1024 * 1024;

const WIRE_DTYPE: Readonly<Record<TensorDtype, WireDType>> = {
  F32: 'DTYPE_F32',
  F16: 'DTYPE_F16',
  BF16: 'DTYPE_BF16',
  Q8_0: 'DTYPE_Q8_0',
  Q4_0: 'DTYPE_Q4_0',
  Q4_K: 'DTYPE_Q4_K',
  Q6_K: 'DTYPE_Q6_K',
};

/** Who may fetch the checkpoint. */
export const WEIGHT_READER_ROLES: readonly NodeRole[] = ['worker', 'admin'];

export function weightServiceHandlers(ckpt: ModelCheckpoint, modelId: string, access: NodeAccess = new NodeAccess(INSECURE)): WeightSourceHandlers {
  const checkModel = (model: string): void => {
    if (model !== '' && model !== modelId) throw new NotFoundError(`model "${model}" is not served here (this coordinator serves "${modelId}")`);
  };
  return {
    FetchConfig: (call, callback) => {
      (async () => {
        access.require(call, WEIGHT_READER_ROLES, 'FetchConfig');
        checkModel(call.request.model);
        return { configJson: await modelConfigJson(ckpt), model: modelId };
      })().then(
        (reply) => callback(null, reply),
        (err: unknown) => callback(toServiceError(err)),
      );
    },

    FetchTensor: (call) => {
      (async () => {
        access.require(call, WEIGHT_READER_ROLES, 'FetchTensor');
        checkModel(call.request.model);
        const raw = await ckpt.readRaw(call.request.name);
        const hash = createHash('sha256').update(raw.bytes).digest();
        const total = raw.bytes.byteLength;
        for (let offset = 0; offset < total || offset === 0; offset += TENSOR_CHUNK_BYTES) {
          const last = offset + TENSOR_CHUNK_BYTES >= total;
          const chunk: TensorChunk = {
            dtype: offset === 0 ? WIRE_DTYPE[raw.dtype] : 'DTYPE_UNSPECIFIED',
            shape: offset === 0 ? [...raw.shape] : [],
            totalBytes: total,
            offset,
            data: Buffer.from(raw.bytes.buffer, raw.bytes.byteOffset + offset, Math.min(TENSOR_CHUNK_BYTES, total - offset)),
            sha256: last ? hash : Buffer.alloc(0),
          };
          if (!(await writeWithBackpressure(call, chunk))) return;
          if (last) break;
        }
        call.end();
      })().catch((err: unknown) => failCall(call, err));
    },
  };
}
