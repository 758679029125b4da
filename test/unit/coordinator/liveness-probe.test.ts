/**
 * The stall watchdog's rule for calling a worker dead (liveness-probe.ts), on a fake clock: dead
 * only when no probe answered within the verdict window (800 ms, or 4 x the worker's slowest
 * recent answer); alive as soon as any of the probes sent every 200 ms answers, however many
 * before it were lost; dead at once when the connection is refused. And the watchdog's probe
 * round over it: only the silent worker becomes a suspect, and a caller arriving mid-round joins
 * it.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { workerId } from '../../../common/ids';
import type { MemberInfo } from '../../../common/cluster/member';
import type { Plan } from '../../../common/cluster/plan';
import { LivenessProbe, MIN_VERDICT_WINDOW_MS, PROBE_INTERVAL_MS, type AskStatus, type ProbeOutcome } from '../../../coordinator/liveness-probe';
import { StallWatchdog } from '../../../coordinator/stall-watchdog';
import { FakeClock } from '../../support/fake-clock';
import { callbackLogger } from '../../../common/logging/logger';

/** Lets promise callbacks run after the clock moved. */
const flush = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

interface Sent {
  atMs: number;
  timeoutMs: number;
}

/**
 * A worker as the probes see it: `answerMs(n)` is how long the n-th probe (0-based) takes to be
 * answered, or undefined when it is lost (it then fails at its deadline, as a gRPC call would),
 * or 'refused' (after 5 ms: nothing listens).
 */
function fakeWorker(clock: FakeClock, answerMs: (n: number) => number | 'refused' | undefined): { ask: AskStatus; sent: Sent[] } {
  const sent: Sent[] = [];
  const ask = (_w: string, timeoutMs: number): Promise<ProbeOutcome> => {
    const n = sent.length;
    sent.push({ atMs: clock.nowMs(), timeoutMs });
    const after = answerMs(n);
    return new Promise((resolve) => {
      if (after === 'refused') clock.setTimer(() => resolve('refused'), 5);
      else if (after !== undefined && after <= timeoutMs) clock.setTimer(() => resolve('answered'), after);
      else clock.setTimer(() => resolve('silent'), timeoutMs);
    });
  };
  return { ask, sent };
}

/** Runs a verdict to its end on the fake clock; returns it and when it came. */
async function verdict(clock: FakeClock, probe: LivenessProbe, worker = 'w1', minWindowMs?: number): Promise<{ alive: boolean; atMs: number }> {
  let outcome: { alive: boolean; atMs: number } | undefined;
  void probe.alive(worker, minWindowMs).then((alive) => (outcome = { alive, atMs: clock.nowMs() }));
  for (let i = 0; i < 500 && outcome === undefined; i++) {
    clock.advance(10);
    await flush();
  }
  assert.ok(outcome !== undefined, 'the verdict came');
  return outcome;
}

describe('LivenessProbe', () => {
  test('a worker that answers nothing is dead after the window, not before, having been probed every 200 ms', async () => {
    const clock = new FakeClock();
    const worker = fakeWorker(clock, () => undefined);
    const v = await verdict(clock, new LivenessProbe(worker.ask, clock));
    assert.equal(v.alive, false);
    assert.equal(v.atMs, MIN_VERDICT_WINDOW_MS);
    assert.deepEqual(
      worker.sent.map((s) => s.atMs),
      [0, 200, 400, 600],
    );
    // Each probe may take until the window ends.
    assert.deepEqual(
      worker.sent.map((s) => s.timeoutMs),
      [800, 600, 400, 200],
    );
  });

  test('a live worker on a lossy link: the first probes lost, a later one answers: alive, as soon as it answers', async () => {
    const clock = new FakeClock();
    const worker = fakeWorker(clock, (n) => (n < 2 ? undefined : 150));
    const v = await verdict(clock, new LivenessProbe(worker.ask, clock));
    assert.equal(v.alive, true);
    assert.equal(v.atMs, 2 * PROBE_INTERVAL_MS + 150);
    assert.equal(worker.sent.length, 3, 'no probe after the answer');
  });

  test('an answer that waited for two retransmission timeouts (200 + 400 ms) still counts: the old 500 ms probe would have called it dead', async () => {
    const clock = new FakeClock();
    const worker = fakeWorker(clock, (n) => (n === 0 ? 650 : undefined));
    const v = await verdict(clock, new LivenessProbe(worker.ask, clock));
    assert.equal(v.alive, true);
    assert.equal(v.atMs, 650);
  });

  test("the window grows with the worker's round trip: a slow link's worker gets 4 x its slowest recent answer", async () => {
    const clock = new FakeClock();
    let silent = false;
    const worker = fakeWorker(clock, () => (silent ? undefined : 300));
    const probe = new LivenessProbe(worker.ask, clock);
    assert.equal((await verdict(clock, probe)).alive, true);
    assert.equal(probe.windowMs('w1'), 1200);
    assert.equal(probe.windowMs('w2'), MIN_VERDICT_WINDOW_MS, 'per worker');
    silent = true;
    const v = await verdict(clock, probe);
    assert.equal(v.alive, false);
    // The verdict started when the previous one ended (at 300 ms, within 10 ms of fake time).
    assert.ok(v.atMs - 300 >= 1200 && v.atMs - 300 <= 1210, `dead after ${v.atMs - 300} ms`);
    probe.forget('w1');
    assert.equal(probe.windowMs('w1'), MIN_VERDICT_WINDOW_MS);
  });

  test('a worker whose host refuses the connection (its process is gone) is dead at once, without waiting for the window', async () => {
    const clock = new FakeClock();
    const worker = fakeWorker(clock, (n) => (n === 0 ? undefined : 'refused'));
    const v = await verdict(clock, new LivenessProbe(worker.ask, clock));
    assert.equal(v.alive, false);
    // The second probe (at 200 ms) is refused 5 ms later; the verdict lands on the next 10 ms step.
    assert.ok(v.atMs >= 205 && v.atMs <= 210, `dead after ${v.atMs} ms`);
  });

  test('a longer minimum (a hand-over loading) holds the verdict longer', async () => {
    const clock = new FakeClock();
    const worker = fakeWorker(clock, () => undefined);
    const v = await verdict(clock, new LivenessProbe(worker.ask, clock), 'w1', 1500);
    assert.equal(v.alive, false);
    assert.equal(v.atMs, 1500);
  });
});

describe('StallWatchdog.probe over LivenessProbe', () => {
  test('only the worker that answers no probe in the window becomes a suspect; lossy and slow ones do not', async () => {
    const clock = new FakeClock();
    const members = new Map<ReturnType<typeof workerId>, MemberInfo>(
      ['w1', 'w2', 'w3'].map((id, i) => [workerId(id), { id: workerId(id), address: `10.0.0.${i + 1}:7100` } as unknown as MemberInfo]),
    );
    const plan = { epoch: 3, modelId: 'm', numLayers: 3, stages: ['w1', 'w2', 'w3'].map((id, i) => ({ range: { start: i, end: i + 1 }, workers: [workerId(id)] })) } as unknown as Plan;
    const counts = new Map<string, number>();
    const ask = (address: string, timeoutMs: number): Promise<ProbeOutcome> => {
      const n = counts.get(address) ?? 0;
      counts.set(address, n + 1);
      // w1 answers the third probe; w2 nothing (blackholed); w3 answers the first after 700 ms.
      const answerMs = address.endsWith('.1:7100') ? (n >= 2 ? 50 : undefined) : address.endsWith('.3:7100') ? 700 : undefined;
      return new Promise((resolve) => {
        if (answerMs !== undefined && answerMs <= timeoutMs) clock.setTimer(() => resolve('answered'), answerMs);
        else clock.setTimer(() => resolve('silent'), timeoutMs);
      });
    };
    const logs: string[] = [];
    const watchdog = new StallWatchdog({
      pipeline: () => undefined,
      plan: () => plan,
      loadingHandover: () => false,
      members: () => members,
      leaseTtlMs: 3000,
      onSuspectCleared: () => undefined,
      log: callbackLogger((m) => logs.push(m)),
      clock,
      ask,
    });
    let done = false;
    void watchdog.probe().then(() => (done = true));
    let joined = false;
    let recentWhileRunning: boolean | undefined;
    for (let i = 0; i < 200 && !done; i++) {
      clock.advance(10);
      await flush();
      if (i === 10) {
        // A broken data path mid-round must wait for this round's verdict, not act without it.
        recentWhileRunning = watchdog.probedRecently();
        void watchdog.probe().then(() => (joined = true));
      }
    }
    assert.equal(recentWhileRunning, false, 'a round in progress is not "probed recently"');
    await flush();
    assert.equal(joined, true, 'probe() joined the round in progress and resolved with it');
    assert.equal(counts.get('10.0.0.2:7100'), 4, 'no second round was started');
    assert.ok(done);
    assert.equal(clock.nowMs(), MIN_VERDICT_WINDOW_MS, 'the round ends with the window');
    assert.equal(watchdog.isSuspect(workerId('w2')), true);
    assert.equal(watchdog.isSuspect(workerId('w1')), false);
    assert.equal(watchdog.isSuspect(workerId('w3')), false);
    assert.deepEqual(logs, ['worker w2 does not answer: leaving it out of the next plan']);
    assert.equal(watchdog.probedRecently(), true);
    watchdog.stop();
  });
});
