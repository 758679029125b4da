/**
 * A stage with its experts spread, on a worker's engine thread: the stage's RunExperts calls may
 * land on the same worker's gRPC server, whose expert set lives on that same thread, so the
 * thread must serve expert runs while a forward waits (it would deadlock otherwise). Also: the
 * dispatch figures reach the main thread with each forward, setExperts switches placement and
 * epoch without a reload, and a stage whose epoch no holder serves fails as retryable.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { UnavailableError } from '../../../common/errors';
import { sequenceId, workerId } from '../../../common/ids';
import { EngineThread, type ThreadedExperts, type ThreadedStage } from '../../../worker/engine-thread';
import type { RemoteExpertsSpec } from '../../../worker/engine-protocol';
import type { ExpertDispatchStats } from '../../../worker/expert-stats';
import { StageHost } from '../../../worker/stage-host';
import { startWorkerServer, type BoundServer } from '../../../worker/worker-server';
import { fixtureDir, loadReference, rejection } from '../../support/checkpoints';
import { argmaxRows } from '../../support/pipeline';

const COMPUTE = { threads: 1 };
const STREAMS = { drainTimeoutMs: 5000, keepaliveTimeMs: 1000, keepaliveTimeoutMs: 1000 };
const EPOCH = 5;
const ref = loadReference('tiny-mixtral');
const LAYERS = Number(ref.config.num_hidden_layers);
const EXPERTS = Number(ref.config.num_local_experts);

async function greedy(stage: ThreadedStage, prompt: readonly number[], steps: number, tag: string): Promise<number[]> {
  const id = sequenceId(tag);
  const tokens: number[] = [];
  let input = { id, startPosition: 0, tokenCount: prompt.length, tokenIds: prompt };
  for (let step = 0; step < steps; step++) {
    const [next] = argmaxRows((await stage.forward({ slices: [input] })).logits!, 1);
    tokens.push(next);
    input = { id, startPosition: input.startPosition + input.tokenCount, tokenCount: 1, tokenIds: [next] };
  }
  await stage.release([id]);
  return tokens;
}

describe('a stage with its experts spread, on the engine thread', () => {
  const stats: ExpertDispatchStats[] = [];
  let thread: EngineThread;
  let experts: ThreadedExperts;
  let host: StageHost;
  let server: BoundServer;
  let stage: ThreadedStage;
  const spec = (epoch: number, self: boolean): RemoteExpertsSpec => ({
    epoch,
    table: Array.from({ length: LAYERS * EXPERTS }, (_, i) => ({ layer: Math.floor(i / EXPERTS), expert: i % EXPERTS, addresses: [server.address] })),
    deadlineMs: 5000,
    ...(self ? { self: { address: server.address, experts: experts.handle } } : {}),
  });
  const served = (): Record<string, number> => {
    const sum = { local: 0, primary: 0, replica: 0 };
    for (const s of stats.splice(0)) for (const role of ['local', 'primary', 'replica'] as const) sum[role] += s.served[role];
    return sum;
  };

  before(async () => {
    thread = new EngineThread({ onExpertStats: (s) => stats.push(s) });
    const source = { kind: 'local' as const, dir: fixtureDir('tiny-mixtral') };
    const all = Array.from({ length: EXPERTS }, (_, e) => e);
    experts = (await thread.loadExperts(source, Array.from({ length: LAYERS }, (_, layer) => ({ layer, experts: all })), COMPUTE)).experts;
    host = new StageHost(workerId('self'), STREAMS);
    server = await startWorkerServer(host, '127.0.0.1', 0, { timeMs: 1000, timeoutMs: 1000 });
    host.install(EPOCH, undefined, experts);
    stage = (await thread.loadStage(source, { start: 0, end: LAYERS }, COMPUTE, spec(EPOCH, false))).stage;
  });
  after(async () => {
    host.uninstall();
    await server.close();
    await thread.terminate();
  });

  test('RunExperts to its own worker while the forward waits: reference tokens, figures on the main thread', async () => {
    const c = ref.cases[0];
    assert.deepEqual(await greedy(stage, c.prompt_ids, c.greedy_tokens.length, 'over-grpc'), c.greedy_tokens);
    const figures = served();
    assert.ok(figures.primary > 0, `expert calls went over gRPC: ${JSON.stringify(figures)}`);
    assert.equal(figures.local, 0);
  });

  test('setExperts: a new epoch and this worker as a holder, without reloading the stage', async () => {
    host.install(EPOCH + 1, undefined, experts);
    await stage.setExperts(spec(EPOCH + 1, true));
    const c = ref.cases[1];
    assert.deepEqual(await greedy(stage, c.prompt_ids, c.greedy_tokens.length, 'in-place'), c.greedy_tokens);
    const figures = served();
    assert.ok(figures.local > 0 && figures.primary === 0, `every expert ran in place: ${JSON.stringify(figures)}`);
  });

  test('no holder serves the stage epoch: the forward fails as retryable UnavailableError', async () => {
    await stage.setExperts(spec(EPOCH + 9, false));
    const err = await rejection(stage.forward({ slices: [{ id: sequenceId('stale'), startPosition: 0, tokenCount: 2, tokenIds: [1, 415] }] }), UnavailableError);
    assert.match(err.message, /epoch/);
    assert.equal(err.retryable, true);
  });
});
