/**
 * How a command-line client reaches a coordinator's client API: plaintext (an --insecure cluster),
 * or TLS trusting the cluster CA, optionally presenting a client certificate, and sending an API key
 * as `authorization: Bearer KEY` on every call.
 *
 * The key travels as call credentials combined with the TLS channel credentials, so every call on
 * the channel carries it without each call site adding metadata. grpc-js refuses call credentials on
 * a plaintext channel, and rightly: a key sent in clear is a key given away. So a key without TLS
 * is an error here, not a silent downgrade.
 */
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { AUTHORIZATION_METADATA_KEY } from '../common/security/api-keys';
import { InvalidArgumentError, NotFoundError } from '../common/errors';

export interface ClientTls {
  /** PEM file of the CA the coordinator's certificate must chain to. */
  readonly ca: string;
  /** PEM files of a client certificate and its key; both or neither. */
  readonly cert?: string;
  readonly key?: string;
}

export interface CoordinatorAccess {
  /** Absent: plaintext. */
  readonly tls?: ClientTls;
  readonly apiKey?: string;
}

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new NotFoundError(`cannot read the ${what} ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/** `authorization: Bearer KEY` on every call. */
export function apiKeyCallCredentials(apiKey: string): grpc.CallCredentials {
  return grpc.credentials.createFromMetadataGenerator((_params, callback) => {
    const metadata = new grpc.Metadata();
    metadata.set(AUTHORIZATION_METADATA_KEY, `Bearer ${apiKey}`);
    callback(null, metadata);
  });
}

export function clientChannelCredentials(access: CoordinatorAccess | undefined): grpc.ChannelCredentials {
  if (access?.tls === undefined) {
    if (access?.apiKey !== undefined) throw new InvalidArgumentError('an API key is only sent over TLS: give --ca FILE (or --state-dir of a secure cluster) with it');
    return grpc.credentials.createInsecure();
  }
  const { tls } = access;
  if ((tls.cert === undefined) !== (tls.key === undefined)) throw new InvalidArgumentError('a client certificate needs both --cert FILE and --key FILE');
  const ssl = grpc.credentials.createSsl(
    readPem(tls.ca, 'CA certificate'),
    tls.key === undefined ? null : readPem(tls.key, 'client key'),
    tls.cert === undefined ? null : readPem(tls.cert, 'client certificate'),
  );
  return access.apiKey === undefined ? ssl : grpc.credentials.combineChannelCredentials(ssl, apiKeyCallCredentials(access.apiKey));
}
