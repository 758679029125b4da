/**
 * A plain node:http endpoint for one Registry and the node's probes:
 *   GET /metrics  -> 200, the registry in Prometheus text format, with the registry's content type
 *   GET /healthz  -> 200, "ok" (the process answers)
 *   GET /livez    -> 200 while the event loop has not stalled past its limit recently, else 503
 *                    (liveness.ts); JSON {live, maxDelayMs, limitMs}
 *   GET /readyz   -> 200 once the node serves (readiness.ts), else 503; JSON {ready, detail}
 *   another method on those paths -> 405 (HEAD is answered like GET, without a body)
 *   any other path -> 404
 * The query string is ignored. Port 0 picks a free port; the chosen one is returned.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { BoraError, InvalidArgumentError } from '../errors';
import { LoopLiveness } from './liveness';
import type { ReadinessProbe } from './readiness';

/** The probes /livez and /readyz answer from; without a readiness probe /readyz is always 200. */
export interface ProbeOptions {
  readonly readiness?: ReadinessProbe;
  readonly liveness?: LoopLiveness;
}

export interface MetricsServer {
  /** The port actually bound (the free one picked when asked for 0). */
  readonly port: number;
  /** Stops listening and drops open connections (scrapers keep theirs alive). */
  close(): Promise<void>;
}

const ROUTES = new Set(['/metrics', '/healthz', '/livez', '/readyz']);

export async function startMetricsServer(registry: Registry, host: string, port: number, probes: ProbeOptions = {}): Promise<MetricsServer> {
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new InvalidArgumentError(`metrics port must be an integer in [0, 65535], got ${port}`);
  }
  const ownLiveness = probes.liveness === undefined ? new LoopLiveness() : undefined;
  const liveness = probes.liveness ?? ownLiveness!;
  ownLiveness?.start();
  const server = createServer((req, res) => {
    void respond(registry, { readiness: probes.readiness, liveness }, req, res);
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
      ownLiveness?.stop();
      closing ??= new Promise<void>((resolve, reject) => {
        server.close((err) => (err === undefined ? resolve() : reject(err)));
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

async function respond(registry: Registry, probes: { readiness?: ReadinessProbe; liveness: LoopLiveness }, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = new URL(req.url ?? '/', 'http://metrics.invalid').pathname;
  if (!ROUTES.has(path)) return send(res, 404, 'text/plain; charset=utf-8', 'not found\n');
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    return send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
  }
  if (path === '/healthz') return send(res, 200, 'text/plain; charset=utf-8', 'ok');
  if (path === '/livez') {
    const state = probes.liveness.state();
    return send(res, state.live ? 200 : 503, JSON_TYPE, `${JSON.stringify({ live: state.live, maxDelayMs: Math.round(state.maxDelayMs), limitMs: state.limitMs })}\n`);
  }
  if (path === '/readyz') {
    const state = probes.readiness === undefined ? { ready: true, detail: 'this process has no readiness condition' } : await probes.readiness.refresh();
    return send(res, state.ready ? 200 : 503, JSON_TYPE, `${JSON.stringify(state)}\n`);
  }
  let body: string;
  try {
    body = await registry.metrics();
  } catch (err) {
    // A failing collect() callback must not take the process down; the scrape fails visibly.
    return send(res, 500, 'text/plain; charset=utf-8', `collecting metrics failed: ${String(err)}\n`);
  }
  send(res, 200, registry.contentType, body);
}

const JSON_TYPE = 'application/json; charset=utf-8';

function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body) });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}
