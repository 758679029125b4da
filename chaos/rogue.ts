/**
 * S11's rogue node: a process in the harness's root namespace (on the cluster's bridge) that tries
 * what a node or an operator may do, with credentials that must not be enough:
 *
 *   - no certificate (TLS trusting the cluster CA, presenting nothing);
 *   - a certificate from another CA, posing as worker/rogue;
 *   - a client certificate from the cluster CA (client/rogue): a stolen or misused client
 *     credential passes any handshake, so only the handlers' role checks stand in its way;
 *   - the client API key (an ordinary user) where the client API is the door.
 *
 * Each attempt is made once and its outcome recorded (refusals.ts judges them). The rogue's files
 * live in RUN_DIR/rogue/.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Etcd3 } from 'etcd3';
import type { CoordinatorAccess } from '../cli/client-credentials';
import { drainWorker } from '../cli/inference-client';
import { EtcdKeys, etcdClientOptions } from '../common/cluster/etcd-keys';
import { asBoraError } from '../common/errors';
import { workerId } from '../common/ids';
import { createCa, issueCertificate } from '../common/security/pki';
import { writeIssuedFiles, type CertFiles } from '../common/security/pki-files';
import type { ResultFrame, TensorChunk } from '../common/wire/messages';
import { boraProto } from '../common/wire/proto';
import type { ChaosCluster } from './cluster';
import { probeStaleFrame } from './probe';
import type { AttemptOutcome, ExpectedRefusal, RogueAttempt } from './refusals';

export const ROGUE_ID = 'rogue';
const CALL_TIMEOUT_MS = 4000;
/** A tensor every chaos checkpoint has: a refusal must not depend on asking for a missing one. */
const TENSOR_NAME = 'model.embed_tokens.weight';

/** Certificates a rogue may hold; `foreign` names the cluster CA as ca (it trusts the servers it attacks). */
interface RogueCredentials {
  readonly clusterCa: Buffer;
  readonly foreign: CertFiles;
  readonly client: CertFiles;
}

type Presented = 'none' | 'foreign' | 'client';

const PRESENTED_NAMES: Record<Presented, string> = {
  none: 'no certificate',
  foreign: 'foreign-CA certificate (worker/rogue)',
  client: 'cluster-CA client certificate (client/rogue)',
};

export async function makeRogueCredentials(cluster: ChaosCluster, dir: string): Promise<RogueCredentials> {
  mkdirSync(dir, { recursive: true });
  const foreignCa = await createCa({ commonName: 'Rogue CA' });
  const address = [cluster.harnessAddress];
  const foreign = writeIssuedFiles(dir, 'foreign-worker-rogue', await issueCertificate(foreignCa, { role: 'worker', id: ROGUE_ID, ipAddresses: address }));
  const client = writeIssuedFiles(dir, 'client-rogue', await issueCertificate(cluster.pki.ca, { role: 'client', id: ROGUE_ID, ipAddresses: address }));
  return { clusterCa: readFileSync(cluster.pki.caFile), foreign, client };
}

function channelCredentials(creds: RogueCredentials, presented: Presented): grpc.ChannelCredentials {
  if (presented === 'none') return grpc.credentials.createSsl(creds.clusterCa);
  const files = presented === 'foreign' ? creds.foreign : creds.client;
  return grpc.credentials.createSsl(creds.clusterCa, readFileSync(files.key), readFileSync(files.cert));
}

function statusName(code: number): string {
  return grpc.status[code] ?? String(code);
}

const NOT_REFUSED = (what: string): AttemptOutcome => ({ refused: false, code: 'OK', message: what });

/** Settles with the first message (not refused) or error (refused) of a server stream. */
function firstOfStream(call: grpc.ClientReadableStream<unknown>, what: string): Promise<AttemptOutcome> {
  return new Promise((resolve) => {
    let settled = false;
    const settle = (outcome: AttemptOutcome): void => {
      if (settled) return;
      settled = true;
      call.cancel();
      resolve(outcome);
    };
    call.on('data', () => settle(NOT_REFUSED(`received ${what}`)));
    call.on('error', (err: grpc.ServiceError) => settle({ refused: true, code: statusName(err.code), message: err.details ?? err.message }));
    call.on('end', () => settle(NOT_REFUSED(`${what} stream ended without an error`)));
  });
}

export class Rogue {
  readonly attempts: RogueAttempt[] = [];

  constructor(
    private readonly cluster: ChaosCluster,
    private readonly creds: RogueCredentials,
    private readonly hiddenSize: number,
  ) {}

  private record(action: string, node: string, credential: string, expected: ExpectedRefusal, audit: string | undefined, outcome: AttemptOutcome): void {
    this.attempts.push({ action, node, credential, expected, ...(audit === undefined ? {} : { audit }), outcome });
  }

  /** Register as a worker: put members/rogue in etcd. */
  async registerInEtcd(presented: Presented): Promise<void> {
    const key = new EtcdKeys().member(workerId(ROGUE_ID));
    const files = presented === 'foreign' ? this.creds.foreign : presented === 'client' ? this.creds.client : undefined;
    const client = new Etcd3({
      ...etcdClientOptions({ hosts: this.cluster.etcdUrl, callTimeoutMs: CALL_TIMEOUT_MS }),
      credentials: { rootCertificate: this.creds.clusterCa, ...(files === undefined ? {} : { privateKey: readFileSync(files.key), certChain: readFileSync(files.cert) }) },
    });
    let outcome: AttemptOutcome;
    try {
      await client.put(key).value(JSON.stringify({ id: ROGUE_ID, address: `${this.cluster.harnessAddress}:7100` }));
      outcome = NOT_REFUSED(`put ${key}`);
    } catch (err) {
      const message = (err as Error).message;
      // etcd3 reports a connection it could not make as a connect failure; RBAC says "permission denied".
      outcome = { refused: true, code: /permission denied/i.test(message) ? 'PERMISSION_DENIED' : 'UNAVAILABLE', message };
    } finally {
      client.close();
    }
    this.record(`etcd put ${key}`, 'etcd', PRESENTED_NAMES[presented], presented === 'client' ? 'PERMISSION_DENIED' : 'handshake', undefined, outcome);
  }

  /** A well-formed frame of the live epoch, as the coordinator (stage 0) or the previous stage would send it. */
  async forgeForward(worker: string, stageIndex: number, epoch: number, presented: Presented): Promise<void> {
    const address = this.cluster.apiAddress(worker);
    const probe = await probeStaleFrame(address, epoch, stageIndex, this.hiddenSize, { credentials: channelCredentials(this.creds, presented), options: {} });
    const outcome: AttemptOutcome =
      probe.kind === 'accepted'
        ? NOT_REFUSED('the stage acked the frame')
        : probe.kind === 'refused'
          ? { refused: true, code: `ack code ${probe.code}`, message: probe.message } // refused in the stage (epoch, lease), not for the caller
          : { refused: true, code: probe.code === undefined ? 'UNKNOWN' : statusName(probe.code), message: probe.message };
    this.record(`Forward to stage ${stageIndex} (${worker}), epoch ${epoch}`, worker, PRESENTED_NAMES[presented], presented === 'client' ? 'PERMISSION_DENIED' : 'handshake', 'Forward', outcome);
  }

  /** Subscribe to a stage's results: every user's next-token logits. */
  async subscribeResults(worker: string, epoch: number, presented: Presented): Promise<void> {
    const client = new (boraProto().Worker)(this.cluster.apiAddress(worker), channelCredentials(this.creds, presented));
    try {
      const outcome = await firstOfStream(client.Results({ planEpoch: epoch }, { deadline: Date.now() + CALL_TIMEOUT_MS }) as grpc.ClientReadableStream<ResultFrame>, 'a result frame');
      this.record(`Results of ${worker}, epoch ${epoch}`, worker, PRESENTED_NAMES[presented], presented === 'client' ? 'PERMISSION_DENIED' : 'handshake', 'Results', outcome);
    } finally {
      client.close();
    }
  }

  /** Drain a worker through the client API: needs an admin key. */
  async drain(coordinator: string, worker: string, credential: string, access: CoordinatorAccess, expected: ExpectedRefusal): Promise<void> {
    let outcome: AttemptOutcome;
    try {
      const epoch = await drainWorker(this.cluster.apiAddress(coordinator), worker, CALL_TIMEOUT_MS, access);
      outcome = NOT_REFUSED(`drained ${worker}: plan ${epoch}`);
    } catch (err) {
      const bora = asBoraError(err);
      outcome = { refused: true, code: bora.code, message: bora.message };
    }
    this.record(`Drain ${worker} on ${coordinator}`, coordinator, credential, expected, 'Drain', outcome);
  }

  /** Fetch a tensor of the checkpoint from the coordinator's WeightSource. */
  async fetchTensor(coordinator: string, presented: Presented, expected: ExpectedRefusal): Promise<void> {
    const client = new (boraProto().WeightSource)(this.cluster.apiAddress(coordinator), channelCredentials(this.creds, presented));
    try {
      const call = client.FetchTensor({ model: '', name: TENSOR_NAME }, { deadline: Date.now() + CALL_TIMEOUT_MS }) as grpc.ClientReadableStream<TensorChunk>;
      const outcome = await firstOfStream(call, `a chunk of ${TENSOR_NAME}`);
      this.record(`FetchTensor ${TENSOR_NAME} on ${coordinator}`, coordinator, PRESENTED_NAMES[presented], expected, 'FetchTensor', outcome);
    } finally {
      client.close();
    }
  }

  /** Client API credentials the rogue may hold: TLS alone, a foreign certificate, or an ordinary client key. */
  clientApiAccess(kind: 'no key' | 'foreign certificate, no key' | 'client key'): CoordinatorAccess {
    const ca = this.cluster.pki.caFile;
    switch (kind) {
      case 'no key':
        return { tls: { ca } };
      case 'foreign certificate, no key':
        return { tls: { ca, cert: this.creds.foreign.cert, key: this.creds.foreign.key } };
      case 'client key':
        return this.cluster.clientAccess()!;
    }
  }

  static presentedName(presented: Presented): string {
    return PRESENTED_NAMES[presented];
  }
}
