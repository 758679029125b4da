import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EtcdKeys } from '../../../common/cluster/etcd-keys';
import { workerId } from '../../../common/ids';
import { type MembershipEvent, MembershipWatch } from '../../../coordinator/membership-watch';
import { Registration } from '../../../worker/registration';
import { etcdSuite, testMember } from '../../support/etcd';
import { eventually } from '../../support/wait';

const describeEvent = (e: MembershipEvent): string => `${e.type} ${e.member.id}`;

describe('membership watch against a real etcd', () => {
  const suite = etcdSuite();
  const { logs, log } = suite;

  it('lists existing members, then reports join, update and leave', { timeout: 20_000 }, async () => {
    const { client } = suite;
    const keys = new EtcdKeys('/members-basic');
    const a = new Registration({ client, keys, member: testMember('a'), ttlMs: 3_000, log });
    await a.start();
    const watch = new MembershipWatch({ client, keys, log });
    const events: MembershipEvent[] = [];
    watch.onEvent((e) => events.push(e));
    await watch.start();
    const b = new Registration({ client, keys, member: testMember('b'), ttlMs: 3_000, log });
    try {
      assert.deepEqual(events.map(describeEvent), ['join a']);
      assert.deepEqual([...watch.members().keys()], ['a']);

      await b.start();
      await eventually(() => events.length === 2, 5_000, 'the join of b');
      await b.updateLoad({ activeSequences: 3, queueDepth: 1 });
      await eventually(() => events.length === 3, 5_000, 'the update of b');
      const update = events[2];
      assert.equal(update.type, 'update');
      assert.deepEqual(update.type === 'update' ? [update.previous.load, update.member.load] : [], [
        { activeSequences: 0, queueDepth: 0 },
        { activeSequences: 3, queueDepth: 1 },
      ]);

      // Garbage under members/ is logged and skipped; it neither crashes nor counts.
      await client.put(keys.membersPrefix() + 'junk').value('{not json');
      await client.put(keys.member(workerId('liar'))).value(JSON.stringify(testMember('other')));
      await client.put(keys.membersPrefix() + 'bad/id').value(JSON.stringify(testMember('x')));
      await eventually(() => logs.filter((l) => l.startsWith('ignoring')).length === 3, 5_000, 'three ignored records');
      assert.deepEqual([...watch.members().keys()].sort(), ['a', 'b']);

      await b.close();
      await eventually(() => events.length === 4, 5_000, 'the leave of b');
      assert.deepEqual(events.map(describeEvent), ['join a', 'join b', 'update b', 'leave b']);
      assert.deepEqual([...watch.members().keys()], ['a']);
    } finally {
      await watch.close();
      await a.close();
      await b.close();
    }
  });

  it('keeps its members across an etcd crash and sees changes made after the restart', { timeout: 30_000 }, async (t) => {
    const { client, etcd } = suite;
    const keys = new EtcdKeys('/members-restart');
    const a = new Registration({ client, keys, member: testMember('a'), ttlMs: 3_000, log });
    await a.start();
    const watch = new MembershipWatch({ client, keys, log });
    const events: MembershipEvent[] = [];
    watch.onEvent((e) => events.push(e));
    await watch.start();
    const c = new Registration({ client, keys, member: testMember('c'), ttlMs: 3_000, log });
    try {
      etcd.kill('SIGKILL');
      await etcd.restart();
      await c.start();
      const restartedAtMs = performance.now();
      await eventually(() => watch.members().has(workerId('c')), 10_000, 'the join of c after the restart');
      t.diagnostic(`join seen ${(performance.now() - restartedAtMs).toFixed(0)} ms after c registered`);
      // The restart reset a's lease TTL instead of expiring it: no leave, no duplicate join.
      assert.deepEqual(events.map(describeEvent), ['join a', 'join c']);
      assert.ok(logs.some((l) => l.includes('re-listing')), 'the broken watch was re-listed');

      // And again: a leave right after a restart is not lost, whether the re-list or the new watch sees it.
      etcd.kill('SIGKILL');
      await etcd.restart();
      await c.close();
      await eventually(() => !watch.members().has(workerId('c')), 10_000, 'the leave of c');
      assert.deepEqual(events.map(describeEvent), ['join a', 'join c', 'leave c']);
    } finally {
      await watch.close();
      await a.close();
      await c.close();
    }
  });
});
