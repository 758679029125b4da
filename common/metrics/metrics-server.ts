/**
 * A plain node:http endpoint for one Registry:
 *   GET /metrics  -> 200, the registry in Prometheus text format, with the registry's content type
 *   GET /healthz  -> 200, "ok"
 *   another method on those paths -> 405 (HEAD is answered like GET, without a body)
 *   any other path -> 404
 * The query string is ignored. Port 0 picks a free port; the chosen one is returned.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { BoraError, InvalidArgumentError } from '../errors';

export interface MetricsServer {
  /** The port actually bound (the free one picked when asked for 0). */
  readonly port: number;
  /** Stops listening and drops open connections (scrapers keep theirs alive). */
  close(): Promise<void>;
}

const ROUTES = new Set(['/metrics', '/healthz']);

export async function startMetricsServer(registry: Registry, host: string, port: number): Promise<MetricsServer> {
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new InvalidArgumentError(`metrics port must be an integer in [0, 65535], got ${port}`);
  }
  const server = createServer((req, res) => {
    void respond(registry, req, res);
  });
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      reject(
        new BoraError('UNAVAILABLE', `cannot serve metrics on ${host}:${port}: ${err.code ?? err.message}`, {
          cause: err,
          retryable: false,
        }),
      );
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });

  let closing: Promise<void> | undefined;
  return {
    port: (server.address() as AddressInfo).port,
    close(): Promise<void> {
      closing ??= new Promise<void>((resolve, reject) => {
        server.close((err) => (err === undefined ? resolve() : reject(err)));
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

async function respond(registry: Registry, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = new URL(req.url ?? '/', 'http://metrics.invalid').pathname;
  if (!ROUTES.has(path)) return send(res, 404, 'text/plain; charset=utf-8', 'not found\n');
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    return send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
  }
  if (path === '/healthz') return send(res, 200, 'text/plain; charset=utf-8', 'ok');
  let body: string;
  try {
    body = await registry.metrics();
  } catch (err) {
    // A failing collect() callback must not take the process down; the scrape fails visibly.
    return send(res, 500, 'text/plain; charset=utf-8', `collecting metrics failed: ${String(err)}\n`);
  }
  send(res, 200, registry.contentType, body);
}

function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body) });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}
