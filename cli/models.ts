/**
 * bora models add | list | remove: the model registry (common/models/).
 *
 *   bora models add (--state-dir D | --coordinator ADDR) NAME@VERSION PATH
 *   bora models list (--state-dir D | --coordinator ADDR) [--json]
 *   bora models remove (--state-dir D | --coordinator ADDR) NAME@VERSION
 *
 * `add` hashes PATH (a hub directory or a GGUF file) here, where the files are: every weight file
 * and every tensor, streamed. With --coordinator the record goes through the coordinator's admin
 * API (the admin API key: --api-key, BORA_API_KEY or D/cluster.json's with --state-dir too);
 * with --state-dir alone the command writes the cluster's etcd itself, as its admin (the local
 * cluster's admin certificate for a secure one).
 */
import * as grpc from '@grpc/grpc-js';
import { join, resolve } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { EtcdKeys, createEtcdClient } from '../common/cluster/etcd-keys';
import { InvalidArgumentError } from '../common/errors';
import { ModelRegistry, type RegisteredVersion } from '../common/models/model-registry';
import { formatModelRef, parseModelRef } from '../common/models/model-ref';
import { describeModelVersion } from '../common/models/weight-digests';
import { recordRefText, type ModelVersionRecord } from '../common/models/version-record';
import { etcdTlsClientOptions } from '../common/security/etcd-tls';
import { identity, identityCommonName } from '../common/security/identity';
import { certFiles } from '../common/security/pki-files';
import { fromServiceError } from '../common/wire/grpc-status';
import type { ModelVersion__Output } from '../common/wire/generated/bora/v1/ModelVersion';
import { versionFromWire, versionToWire } from '../common/wire/model-version-codec';
import { Etcd3 as Etcd3Client } from 'etcd3';
import { parseFlags } from './args';
import { ACCESS_FLAGS, resolveAccess } from './client-access';
import { readClusterFile } from './cluster-file';
import { connect, inferenceClient } from './inference-client';
import { LOCAL_ID, PKI_DIR } from './local-pki';

const FLAGS = { 'state-dir': { type: 'string' }, coordinator: { type: 'string' }, prefix: { type: 'string' }, json: { type: 'boolean' }, ...ACCESS_FLAGS } as const;
const USAGE = 'usage: bora models add|list|remove (--state-dir D | --coordinator HOST:PORT) ...\n  add NAME@VERSION PATH   record a version (a hub directory or a GGUF file) with the SHA-256 of its weights\n  list [--json]           every registered version and its status\n  remove NAME@VERSION     delete a version (refused while it serves traffic)';
/** Registering hashes nothing on the coordinator; removing checks the plan: both are quick. */
const ADMIN_CALL_TIMEOUT_MS = 30_000;

/** What the subcommands need, whichever way the registry is reached. */
interface RegistryAccess {
  add(record: ModelVersionRecord): Promise<void>;
  list(): Promise<RegisteredVersion[]>;
  remove(ref: string): Promise<void>;
  close(): void;
}

export async function modelsCommand(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub !== 'add' && sub !== 'list' && sub !== 'remove') throw new InvalidArgumentError(sub === undefined ? USAGE : `unknown models command "${sub}"\n${USAGE}`);
  const { values: v, positionals } = parseFlags(rest, FLAGS, true);
  const want = sub === 'add' ? 2 : sub === 'remove' ? 1 : 0;
  if (positionals.length !== want) throw new InvalidArgumentError(USAGE);
  // Check the name before hashing anything.
  const ref = want > 0 ? parseModelRef(positionals[0]) : undefined;
  const access = openAccess(v);
  try {
    if (sub === 'add') {
      const record = await describeModelVersion(ref!, positionals[1]);
      await access.add(record);
      const bytes = record.files.reduce((sum, f) => sum + f.sizeBytes, 0);
      process.stdout.write(v.json === true ? `${JSON.stringify({ added: recordRefText(record), files: record.files, shape: record.shape })}\n` : `added ${recordRefText(record)}: ${record.files.length} weight file(s), ${bytes} bytes, ${Object.keys(record.tensors).length} tensors\n`);
    } else if (sub === 'remove') {
      await access.remove(formatModelRef(ref!));
      process.stdout.write(v.json === true ? `${JSON.stringify({ removed: formatModelRef(ref!) })}\n` : `removed ${formatModelRef(ref!)}\n`);
    } else {
      const versions = await access.list();
      process.stdout.write(v.json === true ? `${JSON.stringify(versions.map(listEntry), null, 2)}\n` : formatList(versions));
    }
  } finally {
    access.close();
  }
}

function listEntry(v: RegisteredVersion): object {
  const { tensors: _tensors, ...record } = v.record;
  return { ref: recordRefText(v.record), status: v.status, ...record, failures: v.failures };
}

function formatList(versions: readonly RegisteredVersion[]): string {
  if (versions.length === 0) return 'no model versions are registered\n';
  const lines = versions.map((v) => {
    const s = v.record.shape;
    const line = `${recordRefText(v.record)}\t${v.status}\t${v.record.format}\t${s.modelType} ${s.numLayers} layers, hidden ${s.hiddenSize}${s.numExperts > 0 ? `, ${s.numExperts} experts` : ''}\t${s.weightBytes} bytes\t${v.record.path}`;
    return [line, ...v.failures.map((f) => `\tfailed on worker ${f.worker}: ${f.file} has SHA-256 ${f.actualSha256}, registered ${f.expectedSha256}`)].join('\n');
  });
  return `${lines.join('\n')}\n`;
}

type Flags = ReturnType<typeof parseFlags<typeof FLAGS>>['values'];

function openAccess(v: Flags): RegistryAccess {
  const file = v['state-dir'] === undefined ? undefined : readClusterFile(resolve(v['state-dir']));
  if (v.coordinator !== undefined) return coordinatorAccess(v.coordinator, resolveAccess(v, file?.security, 'admin'));
  if (file === undefined) throw new InvalidArgumentError(`--state-dir D or --coordinator HOST:PORT is required\n${USAGE}`);
  const stateDir = resolve(v['state-dir']!);
  let etcd: Etcd3;
  if (file.security === undefined) etcd = createEtcdClient({ hosts: file.etcd });
  else etcd = new Etcd3Client(etcdTlsClientOptions({ hosts: file.etcd }, certFiles(join(stateDir, PKI_DIR), identityCommonName(identity('admin', LOCAL_ID)))));
  const registry = new ModelRegistry(etcd, new EtcdKeys(v.prefix));
  return {
    add: (record) => registry.add(record),
    list: () => registry.list(),
    remove: (ref) => registry.remove(parseModelRef(ref)),
    close: () => etcd.close(),
  };
}

function coordinatorAccess(address: string, credentials: ReturnType<typeof resolveAccess>): RegistryAccess {
  const client = inferenceClient(address, credentials);
  const ready = connect(client, address);
  const call = <T>(invoke: (deadline: grpc.CallOptions, done: (err: grpc.ServiceError | null, reply?: T) => void) => void): Promise<T> =>
    ready.then(
      () =>
        new Promise<T>((resolvePromise, reject) => {
          invoke({ deadline: Date.now() + ADMIN_CALL_TIMEOUT_MS }, (err, reply) => (err ? reject(fromServiceError(err)) : resolvePromise(reply!)));
        }),
    );
  const fromWire = (m: ModelVersion__Output): RegisteredVersion => ({
    // The list leaves tensor digests out; the record needs at least one to validate.
    record: versionFromWire({ ...m, tensors: m.tensors.length > 0 ? m.tensors : [{ name: '(not listed)', sha256: '0'.repeat(64) }] }),
    status: m.status === 'failed' ? 'failed' : 'ready',
    failures: m.failures.map((f) => ({ worker: f.worker, ref: `${m.name}@${m.version}`, file: f.file, expectedSha256: f.expectedSha256, actualSha256: f.actualSha256, at: f.at })),
  });
  return {
    add: async (record) => {
      await call((options, done) => client.addModelVersion(versionToWire(record, { withTensors: true }), options, done));
    },
    list: async () => (await call<{ versions: ModelVersion__Output[] }>((options, done) => client.listModelVersions({}, options, done))).versions.map(fromWire),
    remove: async (ref) => {
      await call((options, done) => client.removeModelVersion({ model: ref }, options, done));
    },
    close: () => client.close(),
  };
}
