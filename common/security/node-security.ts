/**
 * A process's transport security, chosen once at start and handed to every server and client it
 * makes: either mutual TLS with the node's own certificate (`--ca --cert --key`), or plaintext
 * (`--insecure`, development only). Keeping it one value, rather than credentials built here and
 * there, is what makes "every link is TLS" checkable: a link made without it cannot dial a TLS
 * node at all.
 *
 * Dialing: grpc-js takes the TLS server name from the target, and Bora's targets are mostly IP
 * addresses (members advertise 127.0.0.1:PORT). Node warns (DEP0123) when a server name is an IP,
 * because SNI forbids them. So for an IP target the SNI name is a placeholder
 * (`grpc.ssl_target_name_override`), and the server's certificate is checked by this module
 * instead: against the real target (an IP SAN, or a DNS SAN for a named target), and for a
 * Bora node identity (a coordinator or worker certificate), so that a client or admin certificate
 * from the same CA cannot pose as a node.
 */
import { type ChannelCredentials, type ChannelOptions, type ServerCredentials, credentials as grpcCredentials, ServerCredentials as GrpcServerCredentials } from '@grpc/grpc-js';
import { isIP } from 'node:net';
import { type PeerCertificate, checkServerIdentity } from 'node:tls';
import { InvalidArgumentError } from '../errors';
import { CertificateReloader, type CertificateReloaderOptions } from './certificate-reloader';
import { type Identity, type NodeRole, formatIdentity } from './identity';
import { certificateIdentity } from './pki';
import type { CertFiles } from './pki-files';
import { clientApiServerCredentials, nodeChannelCredentials, nodeServerCredentials } from './tls-credentials';

export type NodeSecurity =
  | { readonly kind: 'insecure' }
  | { readonly kind: 'tls'; readonly reloader: CertificateReloader; readonly self: Identity; readonly files: CertFiles };

/** The part of NodeSecurity that can cross to a worker thread (which builds its own reloader). */
export type TransportSpec = { readonly kind: 'insecure' } | { readonly kind: 'tls'; readonly files: CertFiles };

export const INSECURE: NodeSecurity = { kind: 'insecure' };

/** The roles a node serves under: what a dialing node accepts from the other end. */
export const NODE_SERVER_ROLES: readonly NodeRole[] = ['coordinator', 'worker'];

/** SNI sent when the target is an IP address (never resolved; `.invalid` is reserved for that). */
export const TLS_PLACEHOLDER_SERVER_NAME = 'bora-node.invalid';

/**
 * Mutual TLS from the node's files; throws InvalidArgumentError when they are unusable, or when
 * the certificate's role is not `role` (a worker must not start on a coordinator's certificate).
 */
export function tlsNodeSecurity(files: CertFiles, role?: NodeRole, options: CertificateReloaderOptions = {}): NodeSecurity {
  const reloader = new CertificateReloader(files, options);
  const self = reloader.identity();
  if (role !== undefined && self.role !== role) {
    throw new InvalidArgumentError(`${files.cert} is a ${self.role} certificate (${formatIdentity(self)}); this node needs a ${role} certificate`);
  }
  return { kind: 'tls', reloader, self, files };
}

export function transportSpec(security: NodeSecurity): TransportSpec {
  return security.kind === 'tls' ? { kind: 'tls', files: security.files } : { kind: 'insecure' };
}

export function nodeSecurityFromSpec(spec: TransportSpec): NodeSecurity {
  return spec.kind === 'tls' ? tlsNodeSecurity(spec.files) : INSECURE;
}

/** The warning a node prints on stderr when it starts without TLS. */
export function insecureWarning(what: string): string {
  const bar = '!'.repeat(78);
  return [
    bar,
    `!! ${what} runs WITHOUT TLS (--insecure or no --ca/--cert/--key): for development only.`,
    '!! Anyone who can reach its ports can forge frames, read every result and fetch the weights.',
    bar,
  ].join('\n');
}

/** A node port (Worker service): mutual TLS, a certificate from the cluster CA required. */
export function nodePortCredentials(security: NodeSecurity): ServerCredentials {
  return security.kind === 'tls' ? nodeServerCredentials(security.reloader) : GrpcServerCredentials.createInsecure();
}

/**
 * The coordinator's port, which serves the client API and WeightSource: TLS with the client
 * certificate optional (API keys identify clients); WeightSource checks the peer certificate itself.
 */
export function coordinatorPortCredentials(security: NodeSecurity): ServerCredentials {
  return security.kind === 'tls' ? clientApiServerCredentials(security.reloader) : GrpcServerCredentials.createInsecure();
}

/** What a client needs to dial a node: credentials and the channel options TLS adds. */
export interface NodeDial {
  readonly credentials: ChannelCredentials;
  readonly options: ChannelOptions;
}

const INSECURE_DIAL: NodeDial = { credentials: grpcCredentials.createInsecure(), options: {} };
/** Per reloader and target host: equal credentials let grpc-js share connections between clients. */
const dials = new WeakMap<CertificateReloader, Map<string, NodeDial>>();

/** `10.0.0.1:7000` -> `10.0.0.1`, `[::1]:7000` -> `::1`, `node-a:7000` -> `node-a`. */
export function targetHost(address: string): string {
  if (address.startsWith('[')) {
    const end = address.indexOf(']');
    if (end > 0) return address.slice(1, end);
  }
  const colon = address.lastIndexOf(':');
  return colon < 0 ? address : address.slice(0, colon);
}

/**
 * Checks the certificate a node presents when dialed at `host`: the host must be in its SANs and
 * it must be a node certificate (NODE_SERVER_ROLES). Returns an Error to refuse, as tls wants.
 */
export function checkNodeServer(host: string, cert: PeerCertificate): Error | undefined {
  const hostError = checkServerIdentity(host, cert);
  if (hostError !== undefined) return hostError;
  let who: Identity;
  try {
    who = certificateIdentity(cert.raw);
  } catch (err) {
    return err as Error;
  }
  if (!NODE_SERVER_ROLES.includes(who.role)) return new Error(`${host} presented ${formatIdentity(who)}, not a node certificate`);
  return undefined;
}

/** Credentials and options for dialing the node at `address` (host:port). */
export function dialNode(security: NodeSecurity, address: string): NodeDial {
  if (security.kind === 'insecure') return INSECURE_DIAL;
  const host = targetHost(address);
  let byHost = dials.get(security.reloader);
  if (byHost === undefined) {
    byHost = new Map();
    dials.set(security.reloader, byHost);
  }
  let dial = byHost.get(host);
  if (dial === undefined) {
    dial = {
      credentials: nodeChannelCredentials(security.reloader, { checkServerIdentity: (_name, cert) => checkNodeServer(host, cert) }),
      options: isIP(host) === 0 ? {} : { 'grpc.ssl_target_name_override': TLS_PLACEHOLDER_SERVER_NAME },
    };
    byHost.set(host, dial);
  }
  return dial;
}
