/**
 * A node's etcd client under its transport security. With an https:// etcd URL the client presents
 * the node's own certificate: with --client-cert-auth etcd takes its CN (`worker-w1`) as the etcd
 * user, whose RBAC role limits what it may write (etcd-rbac.ts). A plaintext URL keeps a plaintext
 * client (a development etcd); an https:// URL without a certificate is refused up front, since
 * such an etcd would refuse every call and the node would only retry forever.
 */
import { Etcd3 } from 'etcd3';
import { type EtcdClientSettings, createEtcdClient } from '../cluster/etcd-keys';
import { InvalidArgumentError } from '../errors';
import { etcdTlsClientOptions } from './etcd-tls';
import type { NodeSecurity } from './node-security';

export function etcdUsesTls(settings: EtcdClientSettings): boolean {
  const hosts = typeof settings.hosts === 'string' ? settings.hosts.split(',') : [...settings.hosts];
  return hosts.some((h) => h.trim().startsWith('https://'));
}

export function nodeEtcdClient(settings: EtcdClientSettings, security: NodeSecurity): Etcd3 {
  if (!etcdUsesTls(settings)) return createEtcdClient(settings);
  if (security.kind !== 'tls') throw new InvalidArgumentError(`etcd at ${String(settings.hosts)} uses TLS: give --ca, --cert and --key`);
  return new Etcd3(etcdTlsClientOptions(settings, security.files));
}
