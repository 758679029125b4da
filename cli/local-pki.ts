/**
 * The certificates and API keys of a local (`bora up`) cluster, under STATE/pki/:
 *
 *   ca.pem, ca-key.pem            the cluster CA (kept across `up`s on the same state dir, so an
 *                                 etcd data dir whose RBAC names these users stays usable)
 *   etcd-local.pem                etcd's serving and peer certificate (role etcd)
 *   coordinator-c1.pem            the coordinator (its gRPC ports and its etcd user)
 *   worker-<id>.pem               one per worker, id = the worker id `up` gives it
 *   admin-local.pem               etcd administration (applies RBAC) and admin tools
 *   client-local.pem              what `bora generate|status|drain --state-dir` present
 *   api-keys.json                 the hashes of the two API keys (client and admin)
 *
 * each certificate with its `-key.pem` (0600). Every `up` issues fresh certificates and keys: they
 * are cheap (ECDSA P-256) and a stale one from an earlier run could otherwise outlive its purpose.
 * The two API keys are returned in clear, for cluster.json only.
 */
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { API_KEYS_FILE, addApiKey } from '../common/security/api-keys-file';
import { identity, identityCommonName } from '../common/security/identity';
import { type PemPair, createCa, issueCertificate } from '../common/security/pki';
import { CA_CERT_FILE, type CertFiles, readCaFiles, writeCaFiles, writeIssuedFiles } from '../common/security/pki-files';

export const PKI_DIR = 'pki';
/** The coordinator's certificate id: `bora up` runs one coordinator. */
export const LOCAL_COORDINATOR_ID = 'c1';
/** Id of the admin, client and etcd certificates of a local cluster. */
export const LOCAL_ID = 'local';

export interface LocalPkiRequest {
  readonly stateDir: string;
  readonly workerIds: readonly string[];
  /** Names and addresses every certificate is valid for (default localhost and 127.0.0.1). */
  readonly dnsNames?: readonly string[];
  readonly ipAddresses?: readonly string[];
}

export interface LocalPki {
  readonly dir: string;
  readonly etcd: CertFiles;
  readonly coordinator: CertFiles;
  readonly workers: ReadonlyMap<string, CertFiles>;
  readonly admin: CertFiles;
  readonly client: CertFiles;
  /** The hashes file the coordinator loads (--api-keys). */
  readonly apiKeysFile: string;
  readonly apiKey: string;
  readonly adminKey: string;
}

async function loadOrCreateCa(dir: string): Promise<PemPair> {
  if (existsSync(join(dir, CA_CERT_FILE))) return readCaFiles(dir);
  const ca = await createCa({ commonName: 'Bora local cluster CA' });
  writeCaFiles(dir, ca);
  return ca;
}

export async function createLocalPki(request: LocalPkiRequest): Promise<LocalPki> {
  const dir = join(request.stateDir, PKI_DIR);
  const ca = await loadOrCreateCa(dir);
  const issue = async (role: string, id: string): Promise<CertFiles> => {
    const who = identity(role, id);
    const pair = await issueCertificate(ca, { role, id, dnsNames: request.dnsNames, ipAddresses: request.ipAddresses });
    return writeIssuedFiles(dir, identityCommonName(who), pair);
  };
  const workers = new Map<string, CertFiles>();
  for (const id of request.workerIds) workers.set(id, await issue('worker', id));
  // The keys file belongs to this cluster: a new `up` replaces its keys rather than adding to them.
  const apiKeysFile = join(dir, API_KEYS_FILE);
  rmSync(apiKeysFile, { force: true });
  const apiKey = addApiKey(apiKeysFile, 'client', 'client').key;
  const adminKey = addApiKey(apiKeysFile, 'admin', 'admin').key;
  return {
    dir,
    etcd: await issue('etcd', LOCAL_ID),
    coordinator: await issue('coordinator', LOCAL_COORDINATOR_ID),
    workers,
    admin: await issue('admin', LOCAL_ID),
    client: await issue('client', LOCAL_ID),
    apiKeysFile,
    apiKey,
    adminKey,
  };
}
