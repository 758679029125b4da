/**
 * The prefix cache in a real cluster (`bora up --prefix-cache-bytes`, three stage workers):
 * chat turns sent as whole conversations and streams sharing a system prompt give the tokens a
 * fault-free run without any cache gives, the workers' metrics show every stage skipping
 * prefill; and with a stage worker SIGKILLed mid-run (a reshard to a new plan epoch, whose caches
 * start empty) every stream still completes with exactly those tokens, and the cache is used
 * again on the new plan.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { waitFor } from '../../../cli/processes';
import { generateRemote } from '../../../cli/inference-client';
import type { GenerationEvent } from '../../../common/generation/request';
import { sampleValue, scrapeMetrics } from '../../../common/metrics/exposition';
import { Checkpoint } from '../../../common/model/checkpoint';
import { fixtureDir } from '../../support/checkpoints';
import { generateOn, greedyIds, startCluster, type TestCluster } from '../../support/cluster';
import { greedyBatch, loadPipeline } from '../../support/pipeline';
import { systemPrompt, userTurn } from '../../support/prefix-pipeline';

const MODEL = fixtureDir('tiny-mistral');
const PREFIX_CACHE = ['--prefix-cache-bytes', String(64 * 1024 * 1024)];

/** Each prompt decoded greedily on its own, in this process, without a prefix cache. */
async function reference(prompts: readonly (readonly number[])[], steps: number): Promise<number[][]> {
  const [engine] = await loadPipeline(await Checkpoint.open(MODEL), []);
  try {
    const out: number[][] = [];
    for (const [i, p] of prompts.entries()) out.push((await greedyBatch([engine], [p], steps, `ref${i}`)).tokens[0]);
    return out;
  } finally {
    await engine.close();
  }
}

/** Prefill tokens skipped per stage index, summed over the workers serving now. */
async function hitTokensByStage(cluster: TestCluster): Promise<Map<string, number>> {
  const byStage = new Map<string, number>();
  for (const w of cluster.file.workers) {
    if (w.metrics === undefined) continue;
    const samples = await scrapeMetrics(w.metrics).catch(() => []);
    for (const s of samples.filter((x) => x.name === 'bora_prefix_cache_hit_tokens_total')) {
      byStage.set(s.labels.stage, (byStage.get(s.labels.stage) ?? 0) + s.value);
    }
  }
  return byStage;
}

describe('prefix cache in a local cluster', () => {
  test('a 5-turn chat and streams sharing a system prompt: the same tokens as without a cache, every stage skipping prefill', async (t) => {
    const cluster = await startCluster(t, MODEL, 3, PREFIX_CACHE);
    const steps = 8;
    const conversation = [...systemPrompt(48)];
    for (let turn = 0; turn < 5; turn++) {
      conversation.push(...userTurn(0, turn));
      const [expected] = await reference([conversation], steps);
      const got = await generateOn(cluster.file.coordinator, greedyIds(conversation, steps));
      assert.deepEqual(got.tokens, expected, `turn ${turn}`);
      conversation.push(...got.tokens);
    }
    const shared = Array.from({ length: 6 }, (_, i) => [...systemPrompt(64), ...userTurn(i, 9)]);
    const expected = await reference(shared, steps);
    const got = await Promise.all(shared.map((p) => generateOn(cluster.file.coordinator, greedyIds(p, steps))));
    got.forEach((g, i) => assert.deepEqual(g.tokens, expected[i], `stream ${i}`));
    // Metrics are published once a second.
    const hits = await waitFor('prefix hits on all three stages', 10_000, async () => {
      const h = await hitTokensByStage(cluster);
      return h.size === 3 && [...h.values()].every((v) => v >= 4 * 48) ? h : undefined;
    });
    t.diagnostic(`prefill tokens skipped per stage: ${JSON.stringify(Object.fromEntries(hits))}`);
  });

  test('a stage worker SIGKILLed mid-run: every stream completes with the fault-free tokens, and the new plan caches again', async (t) => {
    const cluster = await startCluster(t, MODEL, 3, PREFIX_CACHE);
    const steps = 120;
    const prompts = Array.from({ length: 8 }, (_, i) => [...systemPrompt(64), ...userTurn(i, 1)]);
    const expected = await reference(prompts, steps);
    const streams = prompts.map((p) => {
      const tokens: number[] = [];
      const done = generateRemote(cluster.file.coordinator, greedyIds(p, steps), (e: GenerationEvent) => {
        if (e.type === 'token') {
          assert.equal(e.index, tokens.length, 'no lost or repeated token');
          tokens.push(e.tokenId);
        }
      }, 120_000);
      return { tokens, done };
    });
    await waitFor('10 tokens on every stream', 60_000, async () => (streams.every((s) => s.tokens.length >= 10) ? true : undefined), 5);
    const w2 = cluster.file.workers.find((w) => w.id === 'w2')!;
    process.kill(w2.pid, 'SIGKILL');
    await Promise.all(streams.map((s) => s.done));
    streams.forEach((s, i) => assert.deepEqual(s.tokens, expected[i], `stream ${i}`));
    // After the reshard: a chat on the same system prompt hits the (new, empty-at-first) caches.
    const follow = [...systemPrompt(64), ...userTurn(3, 4)];
    const [followExpected] = await reference([follow], 8);
    const before = await hitTokensByStage(cluster);
    for (let i = 0; i < 2; i++) assert.deepEqual((await generateOn(cluster.file.coordinator, greedyIds(follow, 8))).tokens, followExpected);
    await waitFor('new prefix hits after the reshard', 10_000, async () => {
      const after = await hitTokensByStage(cluster);
      return [...after.entries()].some(([stage, v]) => v > (before.get(stage) ?? 0)) ? true : undefined;
    });
  });
});
