/**
 * ModelVersion messages (the registry's admin RPCs, proto/bora/v1/inference.proto) to and from
 * the registry's records (common/models/version-record.ts). A record from the wire is validated
 * like one read from etcd: a malformed one is INVALID_ARGUMENT naming the field.
 */
import type { RegisteredVersion } from '../models/model-registry';
import { validateVersionRecord, type ModelVersionRecord } from '../models/version-record';
import type { ModelVersion } from './generated/bora/v1/ModelVersion';
import type { ModelVersion__Output } from './generated/bora/v1/ModelVersion';

export type WireModelVersion = ModelVersion__Output;

/** A record (with its status when known) as a message; `withTensors` false leaves the tensor digests out. */
export function versionToWire(record: ModelVersionRecord, options: { withTensors: boolean; registered?: RegisteredVersion }): ModelVersion {
  const registered = options.registered;
  return {
    name: record.name,
    version: record.version,
    format: record.format,
    path: record.path,
    files: record.files.map((f) => ({ file: f.file, sizeBytes: f.sizeBytes, sha256: f.sha256 })),
    tensors: options.withTensors ? Object.entries(record.tensors).map(([name, sha256]) => ({ name, sha256 })) : [],
    shape: { ...record.shape },
    addedAt: record.addedAt,
    status: registered?.status ?? '',
    failures: (registered?.failures ?? []).map((f) => ({ worker: f.worker, file: f.file, expectedSha256: f.expectedSha256, actualSha256: f.actualSha256, at: f.at })),
  };
}

/** The record a message describes; InvalidArgumentError when it is not a well-formed one. */
export function versionFromWire(message: WireModelVersion): ModelVersionRecord {
  const tensors: Record<string, string> = {};
  for (const t of message.tensors) tensors[t.name] = t.sha256;
  const s = message.shape;
  return validateVersionRecord({
    name: message.name,
    version: message.version,
    format: message.format,
    path: message.path,
    files: message.files.map((f) => ({ file: f.file, sizeBytes: f.sizeBytes, sha256: f.sha256 })),
    tensors,
    shape: s === null ? null : { modelType: s.modelType, numLayers: s.numLayers, hiddenSize: s.hiddenSize, vocabSize: s.vocabSize, numExperts: s.numExperts, weightBytes: s.weightBytes },
    addedAt: message.addedAt,
  });
}
