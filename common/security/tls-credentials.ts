/**
 * gRPC credentials for Bora's three kinds of link, all fed by a CertificateReloader so that a
 * rewritten certificate takes effect without a restart:
 *
 *   - node ports (worker, weight service, coordinator <-> worker): mutual TLS; a client without a
 *     certificate from the cluster CA fails the TLS handshake and never reaches a handler;
 *   - the client API: TLS, client certificate optional (API keys identify clients; an admin tool
 *     may still present a certificate, which peerIdentity() then reports);
 *   - a node dialing a node: its own certificate, trusting only the cluster CA.
 *
 * These use grpc-js 1.14's experimental certificate-provider credentials. Their server factory
 * passes its two providers to the constructor in swapped order; giving the same reloader as both
 * the CA and the identity provider makes that harmless.
 */
import { type ChannelCredentials, type ServerCredentials, type VerifyOptions, experimental } from '@grpc/grpc-js';
import type { CertificateReloader } from './certificate-reloader';

/** Mutual TLS: the peer must present a certificate issued by the cluster CA. */
export function nodeServerCredentials(reloader: CertificateReloader): ServerCredentials {
  return experimental.createCertificateProviderServerCredentials(reloader, reloader, true);
}

/** TLS for the client API: a client certificate is asked for but not required. One that does not
 * chain to the cluster CA is not an error here, it just yields no peer identity. */
export function clientApiServerCredentials(reloader: CertificateReloader): ServerCredentials {
  return experimental.createCertificateProviderServerCredentials(reloader, reloader, false);
}

/**
 * For a node (or admin tool) dialing a node: presents its certificate, trusts only the cluster CA.
 * `verify` may replace the host name check (node-security.ts checks the node identity too).
 */
export function nodeChannelCredentials(reloader: CertificateReloader, verify?: VerifyOptions): ChannelCredentials {
  return experimental.createCertificateProviderChannelCredentials(reloader, reloader, verify);
}
