/**
 * The probes on the metrics port: /readyz follows the node's readiness check (fresh at each
 * request, 503 with the reason while not ready, a throwing check is not ready), /livez turns 503
 * after the event loop stalls past its limit, and a ReadinessProbe tells its listeners about each
 * change of `ready` once.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Registry } from 'prom-client';
import { LoopLiveness } from '../../../common/metrics/liveness';
import { startMetricsServer } from '../../../common/metrics/metrics-server';
import { ReadinessProbe, type ReadyState } from '../../../common/metrics/readiness';

async function get(port: number, path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

function busyFor(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // the event loop is blocked
  }
}

describe('probes', () => {
  test('/readyz answers the readiness check at each request', async (t) => {
    let state: ReadyState = { ready: false, detail: 'loading layers [0, 3)' };
    const readiness = new ReadinessProbe(() => state);
    const server = await startMetricsServer(new Registry(), '127.0.0.1', 0, { readiness });
    t.after(() => server.close());
    assert.deepEqual(await get(server.port, '/readyz'), { status: 503, body: { ready: false, detail: 'loading layers [0, 3)' } });
    state = { ready: true, detail: 'serving plan 2' };
    assert.deepEqual(await get(server.port, '/readyz'), { status: 200, body: { ready: true, detail: 'serving plan 2' } });
  });

  test('a readiness check that throws is not ready, with its message', async (t) => {
    const readiness = new ReadinessProbe(() => {
      throw new Error('etcd did not answer');
    });
    const server = await startMetricsServer(new Registry(), '127.0.0.1', 0, { readiness });
    t.after(() => server.close());
    const reply = await get(server.port, '/readyz');
    assert.equal(reply.status, 503);
    assert.match(String(reply.body.detail), /etcd did not answer/);
  });

  test('without a readiness check /readyz is ready', async (t) => {
    const server = await startMetricsServer(new Registry(), '127.0.0.1', 0);
    t.after(() => server.close());
    assert.equal((await get(server.port, '/readyz')).status, 200);
  });

  test('/livez is 200 on a free loop and 503 after a stall past the limit', async (t) => {
    const liveness = new LoopLiveness(150);
    liveness.start();
    t.after(() => liveness.stop());
    const server = await startMetricsServer(new Registry(), '127.0.0.1', 0, { liveness });
    t.after(() => server.close());
    await new Promise((r) => setTimeout(r, 100));
    const free = await get(server.port, '/livez');
    assert.equal(free.status, 200, JSON.stringify(free.body));
    assert.equal(free.body.limitMs, 150);
    busyFor(400);
    await new Promise((r) => setTimeout(r, 50));
    const stalled = await get(server.port, '/livez');
    assert.equal(stalled.status, 503);
    assert.equal(stalled.body.live, false);
    assert.ok(Number(stalled.body.maxDelayMs) >= 150, JSON.stringify(stalled.body));
  });

  test('ReadinessProbe calls its listeners once per change of ready', async () => {
    const states: ReadyState[] = [
      { ready: false, detail: 'a' },
      { ready: false, detail: 'b' },
      { ready: true, detail: 'c' },
      { ready: true, detail: 'd' },
      { ready: false, detail: 'e' },
    ];
    let i = 0;
    const probe = new ReadinessProbe(() => states[i++]);
    const seen: string[] = [];
    probe.onChange((s) => seen.push(`${s.ready}:${s.detail}`));
    for (let k = 0; k < states.length; k++) await probe.refresh();
    assert.deepEqual(seen, ['true:c', 'false:e']);
    assert.deepEqual(probe.current(), { ready: false, detail: 'e' });
  });
});
