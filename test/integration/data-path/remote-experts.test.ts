/**
 * Experts spread over in-process workers: three Worker gRPC servers on port 0 each hold some of
 * tiny-mixtral's experts (every expert on two of them), and a StageEngine runs every layer with a
 * RemoteExperts backend. Reference tokens for every case, case 0's router choices identical to
 * the reference, one RunExperts per destination per layer step; and a holder killed in
 * mid-generation costs nothing: its calls go to the replicas and the tokens stay the reference.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { LocalExperts, type ExpertBackend, type ExpertCall } from '../../../common/engine/experts';
import type { TokenRoute } from '../../../common/engine/moe-routing';
import { StageEngine } from '../../../common/engine/stage-engine';
import { sequenceId, workerId } from '../../../common/ids';
import { Checkpoint } from '../../../common/model/checkpoint';
import { GrpcExpertTransport } from '../../../worker/expert-client';
import { RemoteExperts, type ExpertRequestSpec, type ExpertRole, type ExpertTable, type LocalHolder } from '../../../worker/remote-experts';
import { StageHost } from '../../../worker/stage-host';
import { startWorkerServer, type BoundServer } from '../../../worker/worker-server';
import { assertReferenceRoutes, fixtureDir, loadReference } from '../../support/checkpoints';
import { greedyBatch } from '../../support/pipeline';

const COMPUTE = { threads: 1 };
const STREAMS = { drainTimeoutMs: 5000, keepaliveTimeMs: 1000, keepaliveTimeoutMs: 1000 };
const EPOCH = 3;
const HOLDERS = 3;
const ref = loadReference('tiny-mixtral');

/** Expert e of every layer lives on holders e mod 3 and (e + 1) mod 3. */
const holdersOf = (expert: number): number[] => [expert % HOLDERS, (expert + 1) % HOLDERS];

interface Holders {
  experts: LocalExperts[];
  servers: BoundServer[];
  hosts: StageHost[];
  table: ExpertTable;
  close(): Promise<void>;
}

async function startHolders(ckpt: Checkpoint): Promise<Holders> {
  const c = ckpt.config;
  const layers = Array.from({ length: c.numLayers }, (_, l) => l);
  const all = Array.from({ length: c.numExperts }, (_, e) => e);
  const experts = await Promise.all(
    Array.from({ length: HOLDERS }, (_, h) => LocalExperts.load(ckpt, layers, () => all.filter((e) => holdersOf(e).includes(h)), COMPUTE)),
  );
  const hosts = experts.map((_, h) => new StageHost(workerId(`h${h}`), STREAMS));
  const servers = await Promise.all(hosts.map((host) => startWorkerServer(host, '127.0.0.1', 0, { timeMs: 1000, timeoutMs: 1000 })));
  hosts.forEach((host, h) => host.install(EPOCH, undefined, experts[h]));
  const table = { epoch: EPOCH, table: layers.flatMap((layer) => all.map((expert) => ({ layer, expert, addresses: holdersOf(expert).map((h) => servers[h].address) }))) };
  return {
    experts,
    servers,
    hosts,
    table,
    close: async () => {
      for (const host of hosts) host.uninstall();
      await Promise.all(servers.map((s) => s.close()));
      await Promise.all(experts.map((e) => e.close()));
    },
  };
}

/** Records each layer step's RunExperts destinations (the stage runs one step at a time). */
class RecordingTransport extends GrpcExpertTransport {
  current: string[] = [];
  override run(address: string, request: ExpertRequestSpec, deadlineMs: number): Promise<Float32Array[]> {
    this.current.push(address);
    return super.run(address, request, deadlineMs);
  }
}

interface Dispatch {
  backend: ExpertBackend;
  remote: RemoteExperts;
  steps: string[][];
  served: Record<ExpertRole, number>;
  failures: string[];
}

function dispatcher(table: ExpertTable, local?: LocalHolder): Dispatch {
  const transport = new RecordingTransport();
  const served: Record<ExpertRole, number> = { local: 0, primary: 0, replica: 0 };
  const failures: string[] = [];
  const remote = new RemoteExperts(table, {
    transport,
    local,
    deadlineMs: 5000,
    hooks: { onServed: (role) => served[role]++, onHolderFailed: (address) => failures.push(address) },
  });
  const steps: string[][] = [];
  const backend: ExpertBackend = {
    run: async (layer: number, calls: readonly ExpertCall[]) => {
      transport.current = [];
      const out = await remote.run(layer, calls);
      steps.push(transport.current);
      return out;
    },
  };
  return { backend, remote, steps, served, failures };
}

describe('experts spread over in-process workers', () => {
  let ckpt: Checkpoint;
  let holders: Holders;
  before(async () => {
    ckpt = await Checkpoint.open(fixtureDir('tiny-mixtral'));
    holders = await startHolders(ckpt);
  });
  after(async () => holders.close());

  test("every case gives the reference tokens, case 0's router the reference choices; one call per destination per step", async () => {
    // The stage shares a process with holder 0: the experts held there run in place.
    const d = dispatcher(holders.table, { address: holders.servers[0].address, experts: holders.experts[0] });
    const routed = new Map<number, readonly TokenRoute[]>();
    let capture = true;
    const engine = await StageEngine.load(
      ckpt,
      { start: 0, end: ckpt.config.numLayers },
      { compute: COMPUTE, experts: d.backend, onRoute: (layer, routes) => capture && routed.set(layer, routes) },
    );
    try {
      const ids = ref.cases[0].prompt_ids;
      await engine.forward({ slices: [{ id: sequenceId('router'), startPosition: 0, tokenCount: ids.length, tokenIds: ids }] });
      engine.release(sequenceId('router'));
      capture = false;
      assertReferenceRoutes(routed, ref.cases[0]);

      const { tokens } = await greedyBatch([engine], ref.cases.map((c) => c.prompt_ids), 40);
      ref.cases.forEach((c, i) => assert.deepEqual(tokens[i], c.greedy_tokens, `case ${i}`));

      for (const [i, step] of d.steps.entries()) assert.equal(new Set(step).size, step.length, `step ${i} sent one call per destination: ${step.join(' ')}`);
      assert.ok(d.steps.every((step) => !step.includes(holders.servers[0].address)), 'the co-located holder is never called over gRPC');
      assert.ok(d.served.local > 0 && d.served.primary > 0, `local and remote copies both served: ${JSON.stringify(d.served)}`);
      // Remote copies take turns step by step (remote-experts.ts), so replicas serve too.
      assert.ok(d.served.replica > 0, `replicas share the remote calls: ${JSON.stringify(d.served)}`);
      assert.deepEqual(d.failures, []);
    } finally {
      await engine.close();
      d.remote.close();
    }
  });

  test('a layer step split over several RunExperts requests gives bit-identical outputs', async () => {
    const H = ckpt.config.hiddenSize;
    const tokens = 37;
    const calls = [0, 1, 2, 3].map((expert) => ({ expert, tokens, x: Float32Array.from({ length: tokens * H }, (_, i) => Math.sin(expert * 7 + i * 0.01)) }));
    const address = holders.servers[0].address; // holds experts 0, 2 and 3 of every layer (holdersOf)
    const held = calls.filter((c) => holdersOf(c.expert).includes(0));
    const whole = new GrpcExpertTransport();
    const split = new GrpcExpertTransport(undefined, 1000, 5 * H * 4); // 5 rows a request: 8 requests for 37 rows
    try {
      const request = { epoch: EPOCH, layer: 1, calls: held };
      const [a, b] = await Promise.all([whole.run(address, request, 5000), split.run(address, request, 5000)]);
      assert.equal(b.length, held.length);
      for (let i = 0; i < held.length; i++) assert.deepEqual(new Uint32Array(b[i].buffer), new Uint32Array(a[i].buffer), `expert ${held[i].expert}, bit for bit`);
    } finally {
      whole.close();
      split.close();
    }
  });

  test('a holder killed mid-generation: its experts move to their replicas, tokens stay the reference', async (t) => {
    const victim = 1;
    const d = dispatcher(holders.table);
    let forwards = 0;
    const engine = await StageEngine.load(
      ckpt,
      { start: 0, end: ckpt.config.numLayers },
      {
        compute: COMPUTE,
        experts: d.backend,
        onRoute: (layer) => {
          // Layer 0 runs once per forward: kill the holder after the prompt and a few tokens.
          if (layer === 0 && ++forwards === 6) holders.servers[victim].server.forceShutdown();
        },
      },
    );
    t.after(async () => {
      await engine.close();
      d.remote.close();
    });
    const { tokens } = await greedyBatch([engine], ref.cases.map((c) => c.prompt_ids), 40, 'kill');
    ref.cases.forEach((c, i) => assert.deepEqual(tokens[i], c.greedy_tokens, `case ${i} across the loss of holder ${victim}`));
    assert.ok(forwards >= 40, 'the holder died early in the generation');
    const victimAddress = holders.servers[victim].address;
    assert.ok(d.failures.length >= 1 && d.failures.every((a) => a === victimAddress), `only the killed holder failed: ${d.failures.join(' ')}`);
    assert.ok(d.served.replica > 0, `replicas served the lost holder's experts: ${JSON.stringify(d.served)}`);
    const afterKill = d.steps.slice(-8);
    assert.ok(afterKill.every((step) => !step.includes(victimAddress)), 'once failed, the holder is no longer asked (within its penalty)');
  });
});
