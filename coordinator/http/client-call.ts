/**
 * An HTTP request as the ClientGate's ClientCall: its headers as metadata (so that
 * `Authorization: Bearer KEY` is checked by the same ApiKeyStore as gRPC's metadata) and its
 * peer address for the audit log.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { ClientCall } from '../client-gate';

export function httpClientCall(headers: IncomingHttpHeaders, remoteAddress: string | undefined, remotePort: number | undefined): ClientCall {
  return {
    metadata: {
      get: (key: string) => {
        const value = headers[key.toLowerCase()];
        if (value === undefined) return [];
        return Array.isArray(value) ? value : [value];
      },
    },
    getPeer: () => `http ${remoteAddress ?? 'unknown'}:${remotePort ?? 0}`,
  };
}
