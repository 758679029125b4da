/**
 * A running 3-worker cluster: 16 concurrent streams without cross-talk, cancellation freeing KV
 * caches on every stage, bad requests refused with a status while others carry on, and a worker
 * joining mid-generation without disturbing running requests.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { status as Status } from '@grpc/grpc-js';
import { fetchStatus, inferenceClient } from '../../../cli/inference-client';
import { spawnDetached, stopProcesses, waitFor } from '../../../cli/processes';
import { BoraError } from '../../../common/errors';
import { Checkpoint } from '../../../common/model/checkpoint';
import { requestToWire } from '../../../common/wire/generate-codec';
import type { GenerateEvent } from '../../../common/wire/messages';
import { fixtureDir, loadReference } from '../../support/checkpoints';
import { boraBin, generateOn, greedyIds, startCluster, type TestCluster } from '../../support/cluster';
import { greedyBatch, loadPipeline, variedPrompts } from '../../support/pipeline';

const ref = loadReference('tiny-mistral');

const prompts = (count: number): number[][] => variedPrompts(count, { minTokens: 3, lengthCycle: 9, firstId: 50, idSpan: 31000 });

async function aloneInProcess(ps: readonly (readonly number[])[], steps: number): Promise<number[][]> {
  const [engine] = await loadPipeline(await Checkpoint.open(fixtureDir('tiny-mistral')), []);
  const out: number[][] = [];
  for (const [i, p] of ps.entries()) out.push((await greedyBatch([engine], [p], steps, `alone${i}`)).tokens[0]);
  await engine.close();
  return out;
}

describe('a 3-worker cluster serving many requests', () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await startCluster(undefined, fixtureDir('tiny-mistral'), 3);
  });
  after(async () => cluster.down());

  test('16 concurrent Generate streams each produce exactly the tokens they produce alone', async () => {
    const ps = prompts(16);
    const expected = await aloneInProcess(ps, 24);
    const results = await Promise.all(ps.map((p) => generateOn(cluster.file.coordinator, greedyIds(p, 24))));
    results.forEach((r, i) => assert.deepEqual(r.tokens, expected[i], `stream ${i}`));
  });

  test('a client that cancels mid-stream frees its KV cache on every stage', async () => {
    const client = inferenceClient(cluster.file.coordinator);
    const call = client.generate(requestToWire(greedyIds(ref.cases[1].prompt_ids, 2000)), { deadline: Date.now() + 60_000 });
    let tokens = 0;
    await new Promise<void>((resolve) => {
      call.on('data', (e: GenerateEvent) => {
        if (e.token && ++tokens === 10) resolve();
      });
    });
    const during = await fetchStatus(cluster.file.coordinator);
    assert.ok(during.workers.every((w) => w.sequences === 1 && w.kvCacheBytes > 0), `every stage holds the sequence: ${JSON.stringify(during.workers)}`);
    call.on('error', () => undefined);
    call.cancel();
    const after = await waitFor('caches to be freed', 10_000, async () => {
      const s = await fetchStatus(cluster.file.coordinator);
      return s.workers.every((w) => w.sequences === 0) ? s : undefined;
    });
    assert.equal(after.activeSequences, 0);
    client.close();
  });

  test('bad requests get a clear status; a request running beside them is unaffected', async () => {
    const good = generateOn(cluster.file.coordinator, greedyIds(ref.cases[0].prompt_ids, 40));
    const expectStatus = async (request: Parameters<typeof generateOn>[1], code: Status, pattern: RegExp): Promise<void> => {
      const err = await generateOn(cluster.file.coordinator, request).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(err instanceof BoraError, `rejected (${String(err)})`);
      assert.equal(err.code, Status[code], err.message);
      assert.match(err.message, pattern);
    };
    await expectStatus({ ...greedyIds([], 5) }, Status.INVALID_ARGUMENT, /empty/);
    await expectStatus(greedyIds([1, 2, 3], 1_000_000), Status.INVALID_ARGUMENT, /exceeds the context limit/);
    await expectStatus(greedyIds([1, 32000], 5), Status.INVALID_ARGUMENT, /outside the vocabulary/);
    await expectStatus({ ...greedyIds([1], 5), sampling: { kind: 'random', temperature: 1, topK: 0, topP: 1.5, seed: 1n } }, Status.INVALID_ARGUMENT, /topP/);
    // An unknown model: the raw API, since the CLI always asks for the served model.
    const client = inferenceClient(cluster.file.coordinator);
    const code = await new Promise<number>((resolve) => {
      const call = client.generate({ ...requestToWire(greedyIds([1, 2], 3)), model: 'no-such-model' }, { deadline: Date.now() + 10_000 });
      call.on('data', () => undefined);
      call.on('error', (e: { code: number }) => resolve(e.code));
      call.on('end', () => resolve(Status.OK));
    });
    client.close();
    assert.equal(code, Status.NOT_FOUND);
    assert.deepEqual((await good).tokens, ref.cases[0].greedy_tokens);
  });

  test('a worker that joins gets layers in the next plan without disturbing running requests', async () => {
    const before = await fetchStatus(cluster.file.coordinator);
    const running = Promise.all(ref.cases.map((c) => generateOn(cluster.file.coordinator, greedyIds(c.prompt_ids, 40))));
    await new Promise((r) => setTimeout(r, 300));
    const pid = spawnDetached(
      process.execPath,
      [boraBin(), 'worker', '--etcd', cluster.file.etcd, '--id', 'w9', '--listen', '127.0.0.1:0', '--models-dir', fixtureDir('tiny-mistral').replace(/\/tiny-mistral$/, ''), '--threads', '1', '--insecure'],
      `${cluster.stateDir}/w9.log`,
    );
    try {
      const results = await running;
      results.forEach((r, i) => assert.deepEqual(r.tokens, ref.cases[i].greedy_tokens, `case ${i} across the join`));
      const joined = await waitFor('the new worker to hold layers', 30_000, async () => {
        const s = await fetchStatus(cluster.file.coordinator);
        const w9 = s.workers.find((w) => w.id === 'w9');
        return s.planEpoch > before.planEpoch && w9 !== undefined && w9.layerEnd > w9.layerStart && w9.ready ? s : undefined;
      });
      assert.equal(joined.workers.length, 4);
      const again = await generateOn(cluster.file.coordinator, greedyIds(ref.cases[2].prompt_ids, 40));
      assert.deepEqual(again.tokens, ref.cases[2].greedy_tokens, 'the 4-stage plan serves the reference tokens');
    } finally {
      await stopProcesses([pid]);
    }
  });
});
