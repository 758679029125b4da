/**
 * The probes of a `bora up` cluster: every node's /livez and /readyz on its metrics port and
 * grpc.health.v1 on its gRPC port say SERVING once the cluster serves; a standby coordinator is
 * ready behind the leader; and when every worker is gone the leader stops being ready (503, and
 * NOT_SERVING to a Watch that was told SERVING before).
 */
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { freePort, spawnDetached, stopProcesses, waitFor } from '../../../cli/processes';
import { healthProto, type HealthClient } from '../../../common/wire/proto';
import { fixtureDir } from '../../support/checkpoints';
import { boraBin, startCluster } from '../../support/cluster';

const MODEL = fixtureDir('tiny-mistral');

async function probe(address: string, path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://${address}${path}`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

function healthClient(address: string): HealthClient {
  return new (healthProto().Health)(address, grpc.credentials.createInsecure());
}

function check(client: HealthClient, service: string): Promise<string> {
  return new Promise((resolve, reject) => client.check({ service }, { deadline: Date.now() + 5000 }, (err, reply) => (err ? reject(err) : resolve(String(reply!.status)))));
}

describe('probes of a local cluster', () => {
  test('ready and SERVING everywhere; a standby is ready; no workers: the leader is not', async (t) => {
    const cluster = await startCluster(t, MODEL, 2);
    const coordinatorMetrics = cluster.file.coordinatorMetrics!;
    const ready = await waitFor('the coordinator to be ready', 20_000, async () => {
      const r = await probe(coordinatorMetrics, '/readyz');
      return r.status === 200 ? r : undefined;
    });
    assert.match(String(ready.body.detail), /^leading; serving plan \d+$/);
    assert.equal((await probe(coordinatorMetrics, '/livez')).status, 200);

    const coordinator = healthClient(cluster.file.coordinator);
    t.after(() => coordinator.close());
    await waitFor('the coordinator health to be SERVING', 10_000, async () => ((await check(coordinator, '')) === 'SERVING' ? true : undefined));
    assert.equal(await check(coordinator, 'bora.v1.Inference'), 'SERVING');
    assert.equal(await check(coordinator, 'bora.v1.WeightSource'), 'SERVING');
    await assert.rejects(check(coordinator, 'bora.v1.Worker'), (err: grpc.ServiceError) => err.code === grpc.status.NOT_FOUND);

    for (const w of cluster.file.workers) {
      const r = await probe(w.metrics!, '/readyz');
      assert.equal(r.status, 200, `${w.id}: ${JSON.stringify(r.body)}`);
      assert.match(String(r.body.detail), /^serving plan \d+$/);
      assert.equal((await probe(w.metrics!, '/livez')).status, 200);
      const client = healthClient(w.address);
      t.after(() => client.close());
      await waitFor(`${w.id} health SERVING`, 10_000, async () => ((await check(client, 'bora.v1.Worker')) === 'SERVING' ? true : undefined));
    }

    // A standby coordinator: ready behind the leader, though it serves no requests itself.
    const standbyMetricsPort = await freePort();
    const standby = spawnDetached(
      process.execPath,
      [boraBin(), 'coordinator', '--etcd', cluster.file.etcd, '--listen', `127.0.0.1:${await freePort()}`, '--model', MODEL, '--metrics-port', String(standbyMetricsPort), '--insecure'],
      join(cluster.stateDir, 'standby.log'),
    );
    t.after(() => stopProcesses([standby]));
    const standbyReady = await waitFor('the standby to be ready', 20_000, async () => {
      const r = await probe(`127.0.0.1:${standbyMetricsPort}`, '/readyz').catch(() => undefined);
      return r?.status === 200 ? r : undefined;
    });
    assert.match(String(standbyReady.body.detail), /^standby behind 127\.0\.0\.1:\d+, which publishes plan \d+$/);

    // Every worker gone: the leader has no plan to serve and says so, to /readyz and to a watcher.
    const watch = coordinator.watch({ service: 'bora.v1.Inference' });
    const statuses: string[] = [];
    watch.on('data', (reply: { status: string }) => statuses.push(reply.status));
    watch.on('error', () => undefined);
    t.after(() => watch.cancel());
    await stopProcesses(cluster.file.workers.map((w) => w.pid), 100);
    const notReady = await waitFor('the leader to be not ready', 30_000, async () => {
      const r = await probe(coordinatorMetrics, '/readyz');
      return r.status === 503 ? r : undefined;
    });
    assert.match(String(notReady.body.detail), /^leading; no plan serves yet$/);
    await waitFor('the watcher to hear NOT_SERVING', 10_000, async () => (statuses.at(-1) === 'NOT_SERVING' ? true : undefined));
    assert.deepEqual(statuses, ['SERVING', 'NOT_SERVING']);
  });
});
