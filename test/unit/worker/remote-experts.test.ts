/**
 * RemoteExperts over a fake transport: one call per destination per layer step with outputs in
 * call order, this worker's own experts run without the network, a failed holder's calls move to
 * a replica (and the holder goes to the back of the line for a while), a holder on another epoch
 * is asked again after a short wait, a step with no holder left fails as retryable, and an
 * expert's calls take turns among its copies. And the collector that carries those hooks' figures
 * from the engine thread to the worker's metrics, and the running counts for its Status reply.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ExpertCall } from '../../../common/engine/experts';
import { BoraError, FailedPreconditionError, InternalError, InvalidArgumentError, UnavailableError } from '../../../common/errors';
import { ExpertStatsCollector, RoutedTokens } from '../../../worker/expert-stats';
import { RemoteExperts, type ExpertRequestSpec, type ExpertRole, type ExpertTransport } from '../../../worker/remote-experts';
import { rejection } from '../../support/checkpoints';


/** Expert e's output for a row x is x * (e + 1) + 1000 * layer: easy to check per call. */
function compute(layer: number, call: ExpertCall): Float32Array {
  return call.x.map((v) => v * (call.expert + 1) + 1000 * layer);
}

type Behaviour = 'ok' | BoraError | ((request: ExpertRequestSpec) => BoraError | undefined);

class FakeTransport implements ExpertTransport {
  readonly sent: { address: string; epoch: number; layer: number; experts: number[]; deadlineMs: number }[] = [];
  readonly behaviour = new Map<string, Behaviour>();

  async run(address: string, request: ExpertRequestSpec, deadlineMs: number): Promise<Float32Array[]> {
    this.sent.push({ address, epoch: request.epoch, layer: request.layer, experts: request.calls.map((c) => c.expert), deadlineMs });
    await new Promise((r) => setImmediate(r));
    const b = this.behaviour.get(address) ?? 'ok';
    const err = b === 'ok' ? undefined : b instanceof BoraError ? b : b(request);
    if (err !== undefined) throw err;
    return request.calls.map((c) => compute(request.layer, c));
  }

  close(): void {}
}

function call(expert: number, rows: number[][]): ExpertCall {
  return { expert, x: Float32Array.from(rows.flat()), tokens: rows.length };
}

/** Layer 0 and 1, experts 0-3: expert e is held by [A, B] when e is even, [B, C] when odd. */
function table(epoch = 7) {
  const holders = (e: number): string[] => (e % 2 === 0 ? ['A', 'B'] : ['B', 'C']);
  return { epoch, table: [0, 1].flatMap((layer) => [0, 1, 2, 3].map((expert) => ({ layer, expert, addresses: holders(expert) }))) };
}

function roles(): { counts: Record<ExpertRole, number>; onServed(role: ExpertRole): void } {
  const counts: Record<ExpertRole, number> = { local: 0, primary: 0, replica: 0 };
  return { counts, onServed: (role) => counts[role]++ };
}

describe('RemoteExperts', () => {
  test('one call per destination per step; outputs in call order; tokens counted per expert', async () => {
    const transport = new FakeTransport();
    const tokens: string[] = [];
    const served = roles();
    const experts = new RemoteExperts(table(), {
      transport,
      deadlineMs: 1234,
      hooks: { onTokens: (layer, expert, n) => tokens.push(`${layer}:${expert}x${n}`), onServed: served.onServed },
    });
    const calls = [call(3, [[1, 2]]), call(0, [[3, 4], [5, 6]]), call(2, [[7, 8]]), call(1, [[9, 10]])];
    const out = await experts.run(1, calls);
    calls.forEach((c, i) => assert.deepEqual([...out[i]], [...compute(1, c)], `call ${i} (expert ${c.expert})`));
    const byAddress = new Map(transport.sent.map((s) => [s.address, s]));
    assert.equal(transport.sent.length, 2, 'one RunExperts per destination');
    assert.deepEqual(byAddress.get('A')?.experts, [0, 2], 'even experts go to their primary A, in call order');
    assert.deepEqual(byAddress.get('B')?.experts, [3, 1], 'odd experts go to their primary B');
    assert.ok(transport.sent.every((s) => s.epoch === 7 && s.layer === 1 && s.deadlineMs === 1234));
    assert.deepEqual(tokens, ['1:3x1', '1:0x2', '1:2x1', '1:1x1']);
    assert.deepEqual(served.counts, { local: 0, primary: 4, replica: 0 });
    assert.deepEqual(await experts.run(0, []), []);
    assert.equal(transport.sent.length, 2, 'an empty step sends nothing');
  });

  test("this worker's own experts run in place, without the network", async () => {
    const transport = new FakeTransport();
    const localRuns: number[][] = [];
    const local = {
      address: 'B',
      experts: {
        run: async (layer: number, calls: readonly ExpertCall[]) => {
          localRuns.push(calls.map((c) => c.expert));
          return calls.map((c) => compute(layer, c));
        },
      },
    };
    const served = roles();
    const experts = new RemoteExperts(table(), { transport, local, hooks: { onServed: served.onServed } });
    const calls = [call(0, [[1, 1]]), call(1, [[2, 2]]), call(2, [[3, 3]]), call(3, [[4, 4]])];
    const out = await experts.run(0, calls);
    calls.forEach((c, i) => assert.deepEqual([...out[i]], [...compute(0, c)]));
    assert.deepEqual(localRuns, [[0, 1, 2, 3]], 'B holds every expert (a replica of the even ones): all run here, in one call');
    assert.deepEqual(transport.sent, []);
    assert.deepEqual(served.counts, { local: 4, primary: 0, replica: 0 });
  });

  test("a failed holder's calls go to the replica in the same step; it is skipped for a while, then asked again", async () => {
    let nowMs = 0;
    const transport = new FakeTransport();
    transport.behaviour.set('A', new UnavailableError('connection refused'));
    const failures: string[] = [];
    const served = roles();
    const experts = new RemoteExperts(table(), {
      transport,
      failedHolderPenaltyMs: 1000,
      now: () => nowMs,
      hooks: { onHolderFailed: (address) => failures.push(address), onServed: served.onServed },
    });
    const calls = [call(0, [[1, 2]]), call(1, [[3, 4]]), call(2, [[5, 6]])];
    const out = await experts.run(0, calls);
    calls.forEach((c, i) => assert.deepEqual([...out[i]], [...compute(0, c)], `call ${i}`));
    assert.deepEqual(
      transport.sent.map((s) => `${s.address}:${s.experts.join(',')}`),
      ['A:0,2', 'B:1', 'B:0,2'],
      'A failed; its experts went to B, their other holder',
    );
    assert.deepEqual(failures, ['A']);
    assert.deepEqual(served.counts, { local: 0, primary: 1, replica: 2 });

    transport.sent.length = 0;
    transport.behaviour.delete('A'); // A is back, but still within its penalty
    nowMs = 999;
    await experts.run(0, [call(0, [[1, 1]])]);
    assert.deepEqual(transport.sent.map((s) => s.address), ['B'], 'within the penalty the replica that answered is preferred');
    nowMs = 1000;
    await experts.run(0, [call(0, [[1, 1]])]);
    assert.deepEqual(transport.sent.map((s) => s.address), ['B', 'A'], 'after it, the primary is asked again');
  });

  test('a step whose expert has no holder left fails as retryable UnavailableError', async () => {
    const transport = new FakeTransport();
    transport.behaviour.set('B', new UnavailableError('B is gone'));
    transport.behaviour.set('C', new BoraError('DEADLINE_EXCEEDED', 'C is slow'));
    const experts = new RemoteExperts(table(), { transport });
    const err = await rejection(experts.run(0, [call(1, [[1, 1]])]), UnavailableError);
    assert.equal(err.retryable, true);
    assert.match(err.message, /expert 1 of layer 0/);
    assert.match(err.message, /B is gone/);
    assert.match(err.message, /C is slow/);
    const missing = new RemoteExperts({ epoch: 1, table: [] }, { transport });
    assert.match((await rejection(missing.run(0, [call(0, [[1, 1]])]), UnavailableError)).message, /no holder is known/);
  });

  test('a holder on another epoch is asked again after a short wait', async () => {
    const transport = new FakeTransport();
    let refusals = 2;
    transport.behaviour.set('A', () => (refusals-- > 0 ? new FailedPreconditionError('frame carries plan epoch 7, this node serves epoch 6') : undefined));
    transport.behaviour.set('B', new FailedPreconditionError('frame carries plan epoch 7, this node serves epoch 6'));
    const failures: string[] = [];
    const experts = new RemoteExperts(table(), { transport, staleRetryDelayMs: 1, hooks: { onHolderFailed: (a) => failures.push(a) } });
    const [out] = await experts.run(0, [call(0, [[2, 3]])]);
    assert.deepEqual([...out], [2, 3]);
    assert.deepEqual(transport.sent.map((s) => s.address), ['A', 'B', 'A', 'B', 'A']);
    assert.deepEqual(failures, [], 'a stale holder is not a failed one');

    const stuck = new FakeTransport();
    stuck.behaviour.set('A', new FailedPreconditionError('stale'));
    stuck.behaviour.set('B', new FailedPreconditionError('stale'));
    const giveUp = new RemoteExperts(table(), { transport: stuck, staleRetries: 2, staleRetryDelayMs: 1 });
    await rejection(giveUp.run(0, [call(0, [[1, 1]])]), UnavailableError);
    assert.equal(stuck.sent.length, 6, 'both holders, three rounds');
  });

  test('a request a holder refuses as malformed is not rerouted: it fails the step', async () => {
    const transport = new FakeTransport();
    transport.behaviour.set('A', new InvalidArgumentError('expert call 0: shape [1, 3]'));
    const experts = new RemoteExperts(table(), { transport });
    await rejection(experts.run(0, [call(0, [[1, 1]])]), InternalError);
    assert.deepEqual(transport.sent.map((s) => s.address), ['A']);
  });

  test("an expert's calls take turns among its copies that have not failed; a local copy still comes first", async () => {
    let nowMs = 0;
    const transport = new FakeTransport();
    const served = roles();
    // Expert 0 is hot: three copies. Expert 1 has two.
    const hot = { epoch: 7, table: [{ layer: 0, expert: 0, addresses: ['A', 'B', 'C'] }, { layer: 0, expert: 1, addresses: ['A', 'B'] }] };
    const experts = new RemoteExperts(hot, { transport, failedHolderPenaltyMs: 1000, now: () => nowMs, hooks: { onServed: served.onServed } });
    const step = async (): Promise<string[]> => {
      transport.sent.length = 0;
      const calls = [call(0, [[1, 2]]), call(1, [[3, 4]])];
      const out = await experts.run(0, calls);
      calls.forEach((c, i) => assert.deepEqual([...out[i]], [...compute(0, c)], 'the same output whichever copy serves'));
      return transport.sent.map((s) => `${s.address}:${s.experts.join(',')}`).sort();
    };
    assert.deepEqual(await step(), ['A:0,1'], 'the first step asks the primaries');
    assert.deepEqual(await step(), ['B:0,1']);
    assert.deepEqual(await step(), ['A:1', 'C:0']);
    assert.deepEqual(await step(), ['A:0', 'B:1']);
    assert.deepEqual(served.counts, { local: 0, primary: 4, replica: 4 }, "the role still says plan's first holder or another");

    // B fails in step 4, its turn for expert 0: that call goes on to A in the same step.
    transport.behaviour.set('B', new UnavailableError('B is gone'));
    assert.deepEqual(await step(), ['A:0', 'A:1', 'B:0']);
    // While B is penalised, expert 0 alternates over A and C, expert 1 stays on A.
    assert.deepEqual(await step(), ['A:1', 'C:0']);
    assert.deepEqual(await step(), ['A:0,1']);
    assert.deepEqual(await step(), ['A:1', 'C:0']);
    nowMs = 1000;
    transport.behaviour.delete('B');
    assert.deepEqual(await step(), ['A:1', 'C:0'], 'turn 8 of three copies is the third');
    assert.deepEqual(await step(), ['A:0', 'B:1'], 'after its penalty B takes turns again');

    // A local copy is used every step, whoever's turn it is.
    const local = { address: 'C', experts: { run: async (layer: number, calls: readonly ExpertCall[]) => calls.map((c) => compute(layer, c)) } };
    experts.update(hot, local);
    for (let i = 0; i < 3; i++) assert.deepEqual(await step(), i % 2 === 0 ? ['A:1'] : ['B:1'], 'expert 0 runs here; expert 1 still takes turns');
  });

  test('update() switches epoch, placement and local holder from the next step', async () => {
    const transport = new FakeTransport();
    const experts = new RemoteExperts(table(7), { transport });
    await experts.run(0, [call(0, [[1, 1]])]);
    experts.update({ epoch: 8, table: [{ layer: 0, expert: 0, addresses: ['C'] }] }, undefined);
    assert.equal(experts.epoch, 8);
    await experts.run(0, [call(0, [[1, 1]])]);
    assert.deepEqual(transport.sent.map((s) => `${s.address}@${s.epoch}`), ['A@7', 'C@8']);
  });
});

describe('ExpertStatsCollector', () => {
  test("sums RemoteExperts' hooks per (layer, expert) and role, and empties on take()", () => {
    const collector = new ExpertStatsCollector();
    assert.equal(collector.take(), undefined, 'nothing happened yet');
    const h = collector.hooks;
    h.onTokens!(0, 3, 2);
    h.onTokens!(0, 3, 5);
    h.onTokens!(1, 0, 1);
    h.onDispatch!('A', 0.002);
    h.onServed!('local');
    h.onServed!('replica');
    h.onServed!('replica');
    h.onHolderFailed!('B', new UnavailableError('gone'));
    assert.deepEqual(collector.take(), {
      tokens: [
        { layer: 0, expert: 3, tokens: 7 },
        { layer: 1, expert: 0, tokens: 1 },
      ],
      dispatchSeconds: [0.002],
      served: { local: 1, primary: 0, replica: 2 },
      holderFailures: 1,
      lastFailure: 'B: gone',
    });
    assert.equal(collector.take(), undefined);
  });
});

describe('RoutedTokens', () => {
  test('sums every window per (layer, expert), listed in layer then expert order', () => {
    const totals = new RoutedTokens();
    assert.deepEqual(totals.list(), []);
    totals.add([{ layer: 1, expert: 0, tokens: 4 }, { layer: 0, expert: 3, tokens: 2 }]);
    const first = totals.list();
    totals.add([{ layer: 0, expert: 3, tokens: 5 }, { layer: 0, expert: 1, tokens: 1 }]);
    assert.deepEqual(totals.list(), [
      { layer: 0, expert: 1, tokens: 1 },
      { layer: 0, expert: 3, tokens: 7 },
      { layer: 1, expert: 0, tokens: 4 },
    ]);
    assert.deepEqual(first, [{ layer: 0, expert: 3, tokens: 2 }, { layer: 1, expert: 0, tokens: 4 }], 'a list taken earlier does not change');
  });
});
