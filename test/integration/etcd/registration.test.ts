import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { EtcdKeys, createEtcdClient } from '../../../common/cluster/etcd-keys';
import { type MemberInfo } from '../../../common/cluster/member';
import { workerId } from '../../../common/ids';
import { type MembershipEvent, MembershipWatch } from '../../../coordinator/membership-watch';
import { type Clock, Registration } from '../../../worker/registration';
import { etcdSuite, testMember } from '../../support/etcd';
import { eventually } from '../../support/wait';

const DIST_ROOT = join(__dirname, '..', '..', '..');

/** Timers that only move when the test calls tick(). */
class FakeClock implements Clock {
  private now = 0;
  private timers: { atMs: number; callback: () => void; live: boolean }[] = [];

  nowMs(): number {
    return this.now;
  }
  setTimer(callback: () => void, delayMs: number): { cancel(): void } {
    const timer = { atMs: this.now + delayMs, callback, live: true };
    this.timers.push(timer);
    return { cancel: () => void (timer.live = false) };
  }
  tick(ms: number): void {
    const target = this.now + ms;
    for (;;) {
      const due = this.timers.filter((t) => t.live && t.atMs <= target).sort((a, b) => a.atMs - b.atMs)[0];
      if (due === undefined) break;
      due.live = false;
      this.now = due.atMs;
      due.callback();
    }
    this.now = target;
    this.timers = this.timers.filter((t) => t.live);
  }
}

const children = new Set<ChildProcess>();

/** A worker in its own process that prints its registration events, one per line. */
function spawnWorker(url: string, prefix: string, id: string, ttlMs: number): ChildProcess {
  const script = `
    const { createEtcdClient, EtcdKeys } = require(${JSON.stringify(join(DIST_ROOT, 'common/cluster/etcd-keys.js'))});
    const { Registration } = require(${JSON.stringify(join(DIST_ROOT, 'worker/registration.js'))});
    const reg = new Registration({
      client: createEtcdClient({ hosts: process.env.URL }), keys: new EtcdKeys(process.env.PREFIX),
      member: JSON.parse(process.env.MEMBER), ttlMs: Number(process.env.TTL_MS), log: require(${JSON.stringify(join(DIST_ROOT, 'common/logging/logger.js'))}).silentLogger(),
    });
    for (const event of ['registered', 'serving', 'fenced']) reg.on(event, () => process.stdout.write(event + '\\n'));
    reg.start();
  `;
  const env = { ...process.env, URL: url, PREFIX: prefix, MEMBER: JSON.stringify(testMember(id)), TTL_MS: String(ttlMs) };
  const child = spawn(process.execPath, ['-e', script], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

function linesOf(child: ChildProcess): string[] {
  const lines: string[] = [];
  let partial = '';
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop() ?? '';
    lines.push(...parts);
  });
  return lines;
}

describe('worker registration against a real etcd', () => {
  const suite = etcdSuite();
  const { log } = suite;
  after(() => {
    for (const child of children) child.kill('SIGKILL');
  });

  it('appears under members/, vanishes within TTL + 1 s of a SIGKILL, and a paused worker fences and rejoins', { timeout: 30_000 }, async (t) => {
    const { client, etcd } = suite;
    const keys = new EtcdKeys('/kill');
    const watch = new MembershipWatch({ client, keys, log });
    const events: { atMs: number; event: MembershipEvent }[] = [];
    watch.onEvent((event) => events.push({ atMs: performance.now(), event }));
    await watch.start();
    try {
      const ttlMs = 2_000;

      const doomed = spawnWorker(etcd.url, '/kill', 'doomed', ttlMs);
      await eventually(() => watch.members().has(workerId('doomed')), 10_000, 'the worker to join');
      assert.equal((await client.get(keys.member(workerId('doomed'))).json() as MemberInfo).id, 'doomed');
      const killedAtMs = performance.now();
      doomed.kill('SIGKILL');
      await eventually(() => events.some((e) => e.event.type === 'leave'), ttlMs + 2_000, 'the leave event');
      const leftAfterMs = (events.find((e) => e.event.type === 'leave')?.atMs ?? Infinity) - killedAtMs;
      t.diagnostic(`member key deleted ${leftAfterMs.toFixed(0)} ms after SIGKILL (TTL ${ttlMs} ms)`);
      assert.ok(leftAfterMs <= ttlMs + 1_000, `left ${leftAfterMs.toFixed(0)} ms after SIGKILL`);
      assert.ok(leftAfterMs >= 1_000, `left ${leftAfterMs.toFixed(0)} ms after SIGKILL: too soon for a lease expiry`);
      assert.equal(await client.get(keys.member(workerId('doomed'))).exists(), false);

      // Pause a worker past its TTL: it is removed, and on resuming it fences before rejoining.
      const paused = spawnWorker(etcd.url, '/kill', 'paused', ttlMs);
      const lines = linesOf(paused);
      await eventually(() => lines.includes('serving') && watch.members().has(workerId('paused')), 10_000, 'the second worker to serve');
      paused.kill('SIGSTOP');
      await eventually(() => !watch.members().has(workerId('paused')), ttlMs + 2_000, 'the paused worker to leave');
      paused.kill('SIGCONT');
      await eventually(() => lines.filter((l) => l === 'serving').length === 2, 10_000, 'a re-registration');
      assert.deepEqual(lines, ['registered', 'serving', 'fenced', 'registered', 'serving']);
      await eventually(() => watch.members().has(workerId('paused')), 2_000, 'the worker to rejoin');
    } finally {
      await watch.close();
    }
  });

  it('fences exactly at last keepalive + TTL - margin (fake clock)', { timeout: 15_000 }, async () => {
    const { client } = suite;
    const clock = new FakeClock();
    const reg = new Registration({ client, keys: new EtcdKeys('/fake'), member: testMember('w1'), ttlMs: 3_000, marginMs: 500, clock, log });
    const fenced: string[] = [];
    reg.on('fenced', (reason) => fenced.push(reason));
    await reg.start();
    assert.equal(reg.isServing(), true);
    assert.equal(reg.servingDeadlineMs(), 2_500); // granted at fake time 0
    clock.tick(2_499);
    assert.equal(reg.isServing(), true);
    assert.equal(fenced.length, 0);
    clock.tick(1);
    assert.equal(reg.isServing(), false);
    assert.equal(fenced.length, 1);
    // The lease is still alive in etcd: the next real keepalive ack restores serving.
    await new Promise<void>((resolve) => reg.once('serving', () => resolve()));
    assert.equal(reg.isServing(), true);
    assert.equal(reg.servingDeadlineMs(), 2_500 + 2_500);
    await reg.close();
    assert.equal(reg.isServing(), false);
    assert.equal(await client.get(new EtcdKeys('/fake').member(workerId('w1'))).exists(), false);
  });

  it('self-fences before the TTL when etcd dies, and re-registers with a new lease when it returns', { timeout: 40_000 }, async (t) => {
    const { client, etcd } = suite;
    const keys = new EtcdKeys('/outage');
    const ttlMs = 2_000;
    const ownClient = createEtcdClient({ hosts: etcd.url });
    t.after(() => ownClient.close());
    const reg = new Registration({ client: ownClient, keys, member: testMember('w2'), ttlMs, marginMs: 500, log });
    const events: { type: string; atMs: number; leaseId?: string }[] = [];
    reg.on('registered', (leaseId) => events.push({ type: 'registered', atMs: performance.now(), leaseId }));
    reg.on('fenced', () => events.push({ type: 'fenced', atMs: performance.now() }));
    reg.on('serving', () => events.push({ type: 'serving', atMs: performance.now() }));
    await reg.start();
    await eventually(() => reg.isServing(), 2_000, 'serving');

    const killedAtMs = performance.now();
    etcd.kill('SIGKILL');
    await eventually(() => events.some((e) => e.type === 'fenced'), ttlMs, 'the fence');
    const fencedAfterMs = (events.find((e) => e.type === 'fenced')?.atMs ?? Infinity) - killedAtMs;
    t.diagnostic(`fenced ${fencedAfterMs.toFixed(0)} ms after etcd was killed`);
    assert.ok(fencedAfterMs < ttlMs - 200, `fenced ${fencedAfterMs.toFixed(0)} ms after etcd died; etcd expires at ${ttlMs} ms`);
    assert.equal(reg.isServing(), false);

    // Stay down past 2 x TTL, so that etcd3 declares the lease lost and a new one is needed.
    await new Promise((resolve) => setTimeout(resolve, 2 * ttlMs + 1_000));
    await etcd.restart();
    const restartedAtMs = performance.now();
    await eventually(() => events.filter((e) => e.type === 'registered').length === 2 && reg.isServing(), 10_000, 're-registration');
    t.diagnostic(`re-registered ${(performance.now() - restartedAtMs).toFixed(0)} ms after etcd answered again`);
    const [first, second] = events.filter((e) => e.type === 'registered');
    assert.notEqual(second.leaseId, first.leaseId);
    const stored = await client.get(keys.member(workerId('w2'))).exec();
    assert.equal(stored.kvs[0]?.lease, second.leaseId);
    // The old lease came back with etcd (restored with a full TTL) and was revoked or expired;
    // the record moved to the new lease, so it must survive that.
    await new Promise((resolve) => setTimeout(resolve, ttlMs + 1_000));
    assert.equal(await client.get(keys.member(workerId('w2'))).exists(), true);
    assert.equal(reg.isServing(), true);
    await reg.close();
  });
});
