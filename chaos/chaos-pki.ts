/**
 * The certificates and API keys of a secure chaos cluster, made fresh for each run under
 * RUN_DIR/pki/ (so no run trusts another's CA):
 *
 *   ca.pem, ca-key.pem          the run's cluster CA
 *   etcd-chaos.pem              etcd's serving and peer certificate, IP SAN = etcd's namespace address
 *   coordinator-<c>.pem         one per coordinator, IP SAN = its namespace address
 *   worker-<w>.pem              one per worker, likewise (other nodes dial it by that address)
 *   admin-chaos.pem             the harness: Worker.Status polls, the etcd watch, RBAC
 *   api-keys.json               hashes of one admin key (the observer's Inference.Status) and the
 *                               client keys the workload sends (`client-1`, `client-2`, ...)
 *
 * Unlike `bora up` (local-pki.ts), the nodes live at SUBNET.x addresses in network namespaces,
 * so each certificate names its own node's address rather than 127.0.0.1.
 */
import { join } from 'node:path';
import { API_KEYS_FILE, addApiKey } from '../common/security/api-keys-file';
import { identity, identityCommonName } from '../common/security/identity';
import { createCa, issueCertificate, type PemPair } from '../common/security/pki';
import { CA_CERT_FILE, writeCaFiles, writeIssuedFiles, type CertFiles } from '../common/security/pki-files';

/** The id of the harness's etcd and admin certificates (CN etcd-chaos, admin-chaos). */
export const CHAOS_ID = 'chaos';
/** The name of the client key a request without its own key is sent with. */
export const DEFAULT_CLIENT_KEY = 'client-1';

export interface ChaosPkiRequest {
  readonly dir: string;
  readonly etcdAddress: string;
  /** Node name -> its namespace address. */
  readonly coordinators: ReadonlyMap<string, string>;
  readonly workers: ReadonlyMap<string, string>;
  /** How many client API keys to make (at least 1). */
  readonly clientKeys: number;
}

export interface ChaosPki {
  readonly dir: string;
  readonly ca: PemPair;
  readonly caFile: string;
  readonly etcd: CertFiles;
  readonly coordinators: ReadonlyMap<string, CertFiles>;
  readonly workers: ReadonlyMap<string, CertFiles>;
  readonly admin: CertFiles;
  readonly apiKeysFile: string;
  readonly adminKey: string;
  /** Key name (`client-1`...) -> the key in clear. */
  readonly clientKeys: ReadonlyMap<string, string>;
}

/** `client-1` ... `client-n`. */
export function clientKeyNames(count: number): string[] {
  return Array.from({ length: Math.max(1, count) }, (_, i) => `client-${i + 1}`);
}

export async function createChaosPki(request: ChaosPkiRequest): Promise<ChaosPki> {
  const dir = request.dir;
  const ca = await createCa({ commonName: 'Bora chaos run CA' });
  writeCaFiles(dir, ca);
  const issue = async (role: string, id: string, address?: string): Promise<CertFiles> => {
    const pair = await issueCertificate(ca, { role, id, dnsNames: ['localhost'], ipAddresses: address === undefined ? ['127.0.0.1'] : [address] });
    return writeIssuedFiles(dir, identityCommonName(identity(role, id)), pair);
  };
  const coordinators = new Map<string, CertFiles>();
  for (const [name, address] of request.coordinators) coordinators.set(name, await issue('coordinator', name, address));
  const workers = new Map<string, CertFiles>();
  for (const [name, address] of request.workers) workers.set(name, await issue('worker', name, address));
  const apiKeysFile = join(dir, API_KEYS_FILE);
  const adminKey = addApiKey(apiKeysFile, 'admin', 'admin-chaos').key;
  const clientKeys = new Map(clientKeyNames(request.clientKeys).map((name) => [name, addApiKey(apiKeysFile, 'client', name).key]));
  return {
    dir,
    ca,
    caFile: join(dir, CA_CERT_FILE),
    etcd: await issue('etcd', CHAOS_ID, request.etcdAddress),
    coordinators,
    workers,
    admin: await issue('admin', CHAOS_ID),
    apiKeysFile,
    adminKey,
    clientKeys,
  };
}
