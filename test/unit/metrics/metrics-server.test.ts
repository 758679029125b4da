import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { Counter, Registry } from 'prom-client';
import { InvalidArgumentError } from '../../../common/errors';
import { parseExposition, sampleValue } from '../../../common/metrics/exposition';
import { type MetricsServer, startMetricsServer } from '../../../common/metrics/metrics-server';

interface Reply {
  readonly status: number;
  readonly contentType: string | undefined;
  readonly body: string;
}

function get(port: number, path: string, method = 'GET'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, contentType: res.headers['content-type'], body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('startMetricsServer', () => {
  const registry = new Registry();
  const hits = new Counter({ name: 'test_hits_total', help: 'h', labelNames: ['kind'], registers: [registry] });
  let server: MetricsServer;

  before(async () => {
    server = await startMetricsServer(registry, '127.0.0.1', 0);
  });
  after(async () => {
    await server.close();
  });

  test('port 0 picks a free port', () => {
    assert.ok(server.port > 0 && server.port < 65536);
  });

  test('GET /metrics serves the registry with its content type, current at each scrape', async () => {
    hits.inc({ kind: 'a' }, 3);
    let reply = await get(server.port, '/metrics');
    assert.equal(reply.status, 200);
    assert.equal(reply.contentType, registry.contentType);
    assert.equal(sampleValue(parseExposition(reply.body), 'test_hits_total', { kind: 'a' }), 3);
    hits.inc({ kind: 'a' });
    reply = await get(server.port, '/metrics?debug=1');
    assert.equal(sampleValue(parseExposition(reply.body), 'test_hits_total', { kind: 'a' }), 4);
  });

  test('GET /healthz answers ok', async () => {
    const reply = await get(server.port, '/healthz');
    assert.equal(reply.status, 200);
    assert.equal(reply.body, 'ok');
  });

  test('other paths are 404, other methods 405, HEAD has no body', async () => {
    for (const path of ['/', '/metric', '/metrics/x', '/favicon.ico']) {
      assert.equal((await get(server.port, path)).status, 404, path);
    }
    assert.equal((await get(server.port, '/metrics', 'POST')).status, 405);
    const head = await get(server.port, '/metrics', 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
  });

  test('close() ends keep-alive connections, and a closed port refuses', async () => {
    const other = await startMetricsServer(registry, '127.0.0.1', 0);
    const reply = await fetch(`http://127.0.0.1:${other.port}/healthz`); // fetch keeps its connection alive
    assert.equal(await reply.text(), 'ok');
    const started = performance.now();
    await other.close();
    assert.ok(performance.now() - started < 1000, 'close() must not wait for idle keep-alive sockets');
    await assert.rejects(get(other.port, '/healthz'), /ECONNREFUSED/);
  });

  test('a port in use or out of range is refused', async () => {
    await assert.rejects(startMetricsServer(registry, '127.0.0.1', server.port), /EADDRINUSE/);
    await assert.rejects(startMetricsServer(registry, '127.0.0.1', 70000), InvalidArgumentError);
  });
});
