import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EtcdKeys, createEtcdClient } from '../../../common/cluster/etcd-keys';
import { type Plan } from '../../../common/cluster/plan';
import { BoraError, FailedPreconditionError, InvalidArgumentError } from '../../../common/errors';
import { type WorkerId, workerId } from '../../../common/ids';
import { PlanStore } from '../../../common/cluster/plan-store';
import { Registration } from '../../../worker/registration';
import { etcdSuite, testMember } from '../../support/etcd';
import { eventually } from '../../support/wait';

function plan(epoch: number, owner: string): Plan {
  return {
    epoch,
    modelId: 'tiny',
    numLayers: 4,
    stages: [
      { range: { start: 0, end: 2 }, workers: [workerId(owner)] },
      { range: { start: 2, end: 4 }, workers: [workerId('w2')] },
    ],
  };
}

describe('plan store against a real etcd', () => {
  const suite = etcdSuite();
  const { logs, log } = suite;

  it('publishes epochs strictly in sequence', { timeout: 10_000 }, async () => {
    const { client } = suite;
    const keys = new EtcdKeys('/seq');
    const store = new PlanStore({ client, keys, log });
    assert.equal(await store.current(), undefined);
    await assert.rejects(store.publish(plan(2, 'w1')), FailedPreconditionError);
    await store.publish(plan(1, 'w1'));
    assert.deepEqual(await store.current(), plan(1, 'w1'));
    assert.equal(await client.get(keys.planEpoch()).string(), '1');
    await assert.rejects(store.publish(plan(1, 'w3')), FailedPreconditionError);
    await assert.rejects(store.publish(plan(3, 'w3')), FailedPreconditionError);
    await assert.rejects(store.publish({ ...plan(2, 'w1'), numLayers: 5 }), InvalidArgumentError);
    await store.publish(plan(2, 'w3'));
    assert.deepEqual(await store.current(), plan(2, 'w3'));
  });

  it('lets exactly one of two racing coordinators publish each epoch', { timeout: 20_000 }, async () => {
    const { etcd } = suite;
    const keys = new EtcdKeys('/race');
    const clientA = createEtcdClient({ hosts: etcd.url });
    const clientB = createEtcdClient({ hosts: etcd.url });
    try {
      const a = new PlanStore({ client: clientA, keys, log });
      const b = new PlanStore({ client: clientB, keys, log });
      const winners: string[] = [];
      for (let epoch = 1; epoch <= 20; epoch++) {
        const results = await Promise.allSettled([a.publish(plan(epoch, 'wa')), b.publish(plan(epoch, 'wb'))]);
        const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i === 0 ? 'wa' : 'wb'] : []));
        assert.equal(won.length, 1, `epoch ${epoch}: ${won.length} publishers succeeded`);
        const lost = results.find((r) => r.status === 'rejected');
        assert.ok(lost?.status === 'rejected' && lost.reason instanceof FailedPreconditionError, `epoch ${epoch}: ${String(lost)}`);
        assert.deepEqual(await a.current(), plan(epoch, won[0]));
        winners.push(won[0]);
      }
      assert.equal(winners.length, 20);
    } finally {
      clientA.close();
      clientB.close();
    }
  });

  it('delivers each newer plan to a watcher, across an etcd crash, and skips older or broken ones', { timeout: 30_000 }, async (t) => {
    const { client, etcd } = suite;
    const keys = new EtcdKeys('/watch');
    const store = new PlanStore({ client, keys, log });
    await store.publish(plan(1, 'w1'));
    const seen: number[] = [];
    const watch = store.watchPlan((p) => seen.push(p.epoch));
    try {
      await watch.ready;
      assert.deepEqual(seen, [1]);
      await store.publish(plan(2, 'w1'));
      await eventually(() => seen.length === 2, 5_000, 'epoch 2');

      etcd.kill('SIGKILL');
      await etcd.restart();
      const restartedAtMs = performance.now();
      await store.publish(plan(3, 'w1'));
      await eventually(() => seen.length === 3, 10_000, 'epoch 3 after the restart');
      t.diagnostic(`epoch 3 delivered ${(performance.now() - restartedAtMs).toFixed(0)} ms after etcd answered again`);

      // Writes that bypass publish(): an older epoch and garbage are ignored, not delivered.
      await client.put(keys.plan()).value(JSON.stringify(plan(1, 'w9')));
      await client.put(keys.plan()).value('{"epoch": 9');
      await store.publish(plan(4, 'w1')); // plan-epoch still says 3: the raw writes did not touch it
      await eventually(() => seen.length === 4, 5_000, 'epoch 4');
      assert.deepEqual(seen, [1, 2, 3, 4]);
      assert.ok(logs.some((l) => l.startsWith('ignoring plan')), 'the broken plan was logged');
    } finally {
      await watch.close();
    }
  });

  it('waits until every listed worker marked the epoch ready', { timeout: 20_000 }, async () => {
    const { client } = suite;
    const keys = new EtcdKeys('/ready');
    const store = new PlanStore({ client, keys, log });
    const ids: WorkerId[] = [workerId('r1'), workerId('r2')];
    const regs = ids.map((id) => new Registration({ client, keys, member: testMember(id), ttlMs: 3_000, log }));
    try {
      await Promise.all(regs.map((r) => r.start()));
      await regs[0].markReady(5);
      const waiting = store.waitReady(5, ids, 10_000);
      let resolved = false;
      void waiting.then(() => (resolved = true));
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(resolved, false);
      await regs[1].markReady(5);
      await waiting;

      const timedOut = await store.waitReady(6, ids, 500).then(
        () => undefined,
        (err: unknown) => err,
      );
      assert.ok(timedOut instanceof BoraError && timedOut.code === 'DEADLINE_EXCEEDED', String(timedOut));
      assert.match(timedOut.message, /r1, r2/);

      // Marking a new epoch removes the old mark; closing a worker removes its marks.
      await regs[0].markReady(6);
      assert.equal(await client.get(keys.ready(5, ids[0])).exists(), false);
      await regs[1].close();
      assert.equal(await client.get(keys.ready(5, ids[1])).exists(), false);
    } finally {
      await Promise.all(regs.map((r) => r.close()));
    }
  });
});
