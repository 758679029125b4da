/**
 * etcd with TLS and client-certificate authentication: the server flags, and the etcd3 client
 * options that present a Bora certificate.
 *
 * With --client-cert-auth, etcd refuses any client without a certificate from the cluster CA at
 * the handshake, and, once auth is enabled (etcd-rbac.ts), takes the certificate's CN as the etcd
 * user: `worker-w1`, `coordinator-c1`, `admin-ops` (identity.ts). Peers use TLS and the same CA.
 */
import { readFileSync } from 'node:fs';
import type { IOptions } from 'etcd3';
import { type EtcdClientSettings, etcdClientOptions } from '../cluster/etcd-keys';
import type { CertFiles } from './pki-files';

export interface EtcdTlsLayout {
  readonly name: string;
  readonly dataDir: string;
  /** https://host:port, one URL */
  readonly clientUrl: string;
  readonly peerUrl: string;
  /** The etcd server's certificate (role `etcd`), used for clients and peers alike. */
  readonly files: CertFiles;
}

/** etcd 3.4 flags for a single member serving TLS with mandatory client certificates. */
export function etcdTlsFlags(layout: EtcdTlsLayout): string[] {
  const { files } = layout;
  return [
    '--name', layout.name,
    '--data-dir', layout.dataDir,
    '--listen-client-urls', layout.clientUrl,
    '--advertise-client-urls', layout.clientUrl,
    '--listen-peer-urls', layout.peerUrl,
    '--initial-advertise-peer-urls', layout.peerUrl,
    '--initial-cluster', `${layout.name}=${layout.peerUrl}`,
    '--initial-cluster-state', 'new',
    '--cert-file', files.cert,
    '--key-file', files.key,
    '--trusted-ca-file', files.ca,
    '--client-cert-auth',
    '--peer-cert-file', files.cert,
    '--peer-key-file', files.key,
    '--peer-trusted-ca-file', files.ca,
    '--peer-client-cert-auth',
  ];
}

/** etcd3 client options (Bora's timeouts, see etcd-keys.ts) presenting the certificate in `files`. */
export function etcdTlsClientOptions(settings: EtcdClientSettings, files: CertFiles): IOptions {
  return {
    ...etcdClientOptions(settings),
    credentials: {
      rootCertificate: readFileSync(files.ca),
      privateKey: readFileSync(files.key),
      certChain: readFileSync(files.cert),
    },
  };
}
