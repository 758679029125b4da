/**
 * The model registry's admin RPCs on the coordinator (AddModelVersion, ListModelVersions,
 * RemoveModelVersion): each needs the `admin` role (client-gate.ts), and each call, refused or
 * not, is written to the audit log. The registry itself (common/models/model-registry.ts) lives
 * in etcd, so any coordinator, leader or standby, answers.
 */
import type * as grpc from '@grpc/grpc-js';
import { BoraError, asBoraError } from '../common/errors';
import type { ModelRegistry } from '../common/models/model-registry';
import { parseModelRef } from '../common/models/model-ref';
import { versionFromWire, versionToWire } from '../common/wire/model-version-codec';
import { toServiceError } from '../common/wire/grpc-status';
import type { ApiKeyPrincipal } from '../common/security/api-keys';
import type { InferenceHandlers } from '../common/wire/proto';
import type { ClientCall, ClientGate, ClientMethod } from './client-gate';

export interface ModelAdminDeps {
  readonly gate: ClientGate;
  /** Undefined: this coordinator has no registry (FAILED_PRECONDITION). */
  readonly registry: () => ModelRegistry | undefined;
}

type AdminHandlers = Pick<InferenceHandlers, 'AddModelVersion' | 'ListModelVersions' | 'RemoveModelVersion'>;

export function modelAdminHandlers(deps: ModelAdminDeps): AdminHandlers {
  /** Authorizes, runs `work`, audits the outcome and answers. */
  const unary = <T>(call: ClientCall, method: ClientMethod, what: (() => string) | string, work: (registry: ModelRegistry) => Promise<T>, callback: grpc.sendUnaryData<T>): void => {
    let who: ApiKeyPrincipal;
    try {
      who = deps.gate.principal(call, method);
    } catch (err) {
      callback(toServiceError(err));
      return;
    }
    const describe = (): string => (typeof what === 'string' ? what : what());
    (async () => {
      const registry = deps.registry();
      if (registry === undefined) throw new BoraError('FAILED_PRECONDITION', 'this coordinator has no model registry');
      return work(registry);
    })().then(
      (reply) => {
        if (method !== 'ListModelVersions') deps.gate.audit(who, call, describe(), 'ok');
        callback(null, reply);
      },
      (err: unknown) => {
        deps.gate.audit(who, call, describe(), 'failed', asBoraError(err).message);
        callback(toServiceError(err));
      },
    );
  };

  return {
    AddModelVersion: (call, callback) => {
      const label = (): string => `AddModelVersion ${call.request.name}@${call.request.version}`;
      unary(call, 'AddModelVersion', label, async (registry) => {
        const record = versionFromWire(call.request);
        await registry.add(record);
        return versionToWire(record, { withTensors: false, registered: await registry.describe({ name: record.name, version: record.version }) });
      }, callback);
    },

    ListModelVersions: (call, callback) => {
      unary(call, 'ListModelVersions', 'ListModelVersions', async (registry) => {
        const versions = await registry.list();
        return { versions: versions.map((v) => versionToWire(v.record, { withTensors: false, registered: v })) };
      }, callback);
    },

    RemoveModelVersion: (call, callback) => {
      unary(call, 'RemoveModelVersion', `RemoveModelVersion ${call.request.model}`, async (registry) => {
        const ref = parseModelRef(call.request.model);
        await registry.remove(ref);
        return {};
      }, callback);
    },
  };
}

