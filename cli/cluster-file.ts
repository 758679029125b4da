/**
 * STATE/cluster.json: what `bora up` started and how to reach it. Tests, benches, operators and the
 * client commands (`bora generate|status|drain --state-dir`) read it.
 *
 * A secure cluster's file holds its two API keys in clear (the only place they exist: the
 * coordinator keeps hashes), so the file is always written with mode 0600, atomically (a reader
 * never sees half a file while `up` or `drain` rewrites it).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidArgumentError, NotFoundError } from '../common/errors';
import { writeFileAtomic } from '../common/security/pki-files';

export const CLUSTER_FILE = 'cluster.json';
const PRIVATE_MODE = 0o600;

/** How a client reaches a secure cluster: trust its CA, present a certificate, send an API key. */
export interface ClusterSecurity {
  /** The cluster CA certificate (PEM file). */
  readonly ca: string;
  /** A client certificate and its private key (PEM files), role `client`. */
  readonly clientCert: string;
  readonly clientKey: string;
  /** API key of role `client` (generate, chat, a reduced status). */
  readonly apiKey: string;
  /** API key of role `admin` (drain, full status). */
  readonly adminKey: string;
}

/** The contract of STATE/cluster.json. */
export interface ClusterFile {
  readonly coordinator: string;
  /** host:port of the coordinator's OpenAI-compatible HTTP API (HTTPS when `security` is set). */
  readonly http?: string;
  readonly etcd: string;
  readonly workers: {
    id: string;
    pid: number;
    address: string;
    /** host:port of the worker's Prometheus /metrics. */
    metrics?: string;
    layers: [number, number] | null;
    /** With --placement experts: the experts this worker holds, per layer. */
    experts?: { layer: number; experts: number[] }[];
  }[];
  readonly coordinatorPid: number;
  /** host:port of the coordinator's Prometheus /metrics. */
  readonly coordinatorMetrics?: string;
  readonly etcdPid: number | null;
  readonly modelDir: string;
  /** Absent for a cluster started with --insecure. */
  readonly security?: ClusterSecurity;
}

export function clusterFilePath(stateDir: string): string {
  return join(stateDir, CLUSTER_FILE);
}

export function readClusterFile(stateDir: string): ClusterFile {
  const path = clusterFilePath(stateDir);
  if (!existsSync(path)) throw new NotFoundError(`${path} does not exist: no cluster was started with --state-dir ${stateDir}`);
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as ClusterFile;
  } catch (err) {
    throw new InvalidArgumentError(`${path} is not JSON (${(err as Error).message})`, { cause: err });
  }
}

export function writeClusterFile(stateDir: string, file: ClusterFile): void {
  writeFileAtomic(clusterFilePath(stateDir), `${JSON.stringify(file, null, 2)}\n`, PRIVATE_MODE);
}
