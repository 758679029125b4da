/**
 * Which served version a request's `model` names. Today a cluster serves one model, optionally a
 * registered version of it (`--model-version NAME@VERSION`); a request may name:
 *   - nothing (""): the served model;
 *   - the served model id (the checkpoint's directory name, or --model-id): the same;
 *   - NAME: the version that serves NAME now (with one served version, that one);
 *   - NAME@VERSION: that version, if it serves here.
 * A name outside the grammar (common/models/model-ref.ts) is INVALID_ARGUMENT, one not served
 * here NOT_FOUND. The result names the version for the response metadata (`bora-model-version`).
 */
import * as grpc from '@grpc/grpc-js';
import { NotFoundError } from '../common/errors';
import { formatModelRef, parseModelSelector, type ModelRef } from '../common/models/model-ref';

/** The response metadata key naming the version that served a request. */
export const MODEL_VERSION_METADATA = 'bora-model-version';

export interface ServedModel {
  /** The model id of the plan ('' accepts any request's empty model field). */
  readonly modelId: string;
  /** The registered version served, when the coordinator was given one. */
  readonly version?: ModelRef;
}

/** The response metadata naming the version that serves a request. */
export function modelVersionMetadata(version: ModelRef): grpc.Metadata {
  const metadata = new grpc.Metadata();
  metadata.set(MODEL_VERSION_METADATA, formatModelRef(version));
  return metadata;
}

/** The served version `requested` routes to (undefined when no registered version serves);
 * throws InvalidArgumentError or NotFoundError. */
export function routeModel(requested: string, served: ServedModel): ModelRef | undefined {
  if (requested === '' || served.modelId === '' || requested === served.modelId) return served.version;
  const selector = parseModelSelector(requested);
  const version = served.version;
  const servedText = version === undefined ? `"${served.modelId}"` : `"${formatModelRef(version)}" (also named "${version.name}" and "${served.modelId}")`;
  if (version === undefined || selector.name !== version.name || (selector.version !== undefined && selector.version !== version.version)) {
    throw new NotFoundError(`unknown model "${requested}"; this cluster serves ${servedText}`);
  }
  return version;
}
