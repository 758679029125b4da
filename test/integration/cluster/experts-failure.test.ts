/**
 * Losing an expert holder under load: 3 worker processes with tiny-mixtral's experts spread
 * (`--placement experts`), 16 concurrent greedy streams, and a worker that holds experts killed
 * with SIGKILL after a few tokens. Every stream completes with exactly the tokens its prompt gives
 * alone in-process: expert calls move to the replicas at once, and what the dead worker served as
 * a stage is replayed on the next plan.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fetchStatus, generateRemote } from '../../../cli/inference-client';
import { isAlive, waitFor } from '../../../cli/processes';
import { Checkpoint } from '../../../common/model/checkpoint';
import { fixtureDir } from '../../support/checkpoints';
import { greedyIds, startCluster } from '../../support/cluster';
import { greedyAlone, syntheticPrompts } from '../../support/pipeline';

const STREAMS = 16;
const STEPS = 48;
const KILL_AFTER_TOKENS = 3;

describe('experts spread over 3 workers, one killed mid-generation', () => {
  test('16 concurrent streams complete with the tokens each gives alone', async (t) => {
    const prompts = syntheticPrompts(STREAMS);
    const expected = await greedyAlone(await Checkpoint.open(fixtureDir('tiny-mixtral')), prompts, STEPS);
    const cluster = await startCluster(t, fixtureDir('tiny-mixtral'), 3, ['--placement', 'experts', '--lease-ttl-ms', '2000']);
    const before = await fetchStatus(cluster.file.coordinator);

    // A worker that holds experts and no stage if there is one; otherwise one that does not own
    // the first stage (the coordinator's entry point), so the loss is an expert holder's and a
    // later stage's, never the whole front of the pipeline.
    const holders = cluster.file.workers.filter((w) => (w.experts ?? []).length > 0);
    const victim = holders.find((w) => w.layers === null) ?? holders.find((w) => w.layers?.[0] !== 0);
    assert.ok(victim !== undefined && victim.pid > 0, `a victim among ${JSON.stringify(cluster.file.workers)}`);

    let firstTokens!: () => void;
    const started = new Promise<void>((resolve) => (firstTokens = resolve));
    let finishedBeforeKill = 0;
    let killed = false;
    let resumes = 0;
    const streams = prompts.map(async (p) => {
      const tokens: number[] = [];
      await generateRemote(
        cluster.file.coordinator,
        greedyIds(p, STEPS),
        (e) => {
          if (e.type === 'token') {
            tokens.push(e.tokenId);
            if (tokens.length === KILL_AFTER_TOKENS) firstTokens();
          } else {
            resumes += e.resumes;
            if (!killed) finishedBeforeKill++;
          }
        },
        60_000,
      );
      return tokens;
    });
    await started;
    process.kill(victim.pid, 'SIGKILL');
    killed = true;
    await waitFor(`worker ${victim.id} to die`, 5000, async () => (isAlive(victim.pid) ? undefined : true), 20);

    const results = await Promise.all(streams);
    results.forEach((tokens, i) => assert.deepEqual(tokens, expected[i], `stream ${i}`));
    assert.equal(finishedBeforeKill, 0, 'every stream was still generating when the worker died');
    // The streams may finish before the dead worker's lease (2 s) runs out: the plan left it out
    // at once (it stopped answering), the membership follows when etcd expires the lease.
    const after = await waitFor('the dead worker to leave the cluster', 10_000, async () => {
      const s = await fetchStatus(cluster.file.coordinator);
      return s.workers.some((w) => w.id === victim.id) ? undefined : s;
    });
    t.diagnostic(`killed ${victim.id} (layers ${JSON.stringify(victim.layers)}); plan ${before.planEpoch} -> ${after.planEpoch}; ${resumes} stream resume(s)`);
    assert.ok(after.planEpoch > before.planEpoch, 'a new plan without the dead worker serves');
    const holdersNow = new Map<string, number>();
    for (const w of after.workers) for (const { layer, experts } of w.experts) for (const e of experts) holdersNow.set(`${layer}:${e}`, (holdersNow.get(`${layer}:${e}`) ?? 0) + 1);
    assert.ok([...holdersNow.values()].every((n) => n >= 2), 'every expert has two copies again');
  });
});
