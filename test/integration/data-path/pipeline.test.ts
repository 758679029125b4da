/**
 * The gRPC data path without etcd: workers serving fixed assignments on port 0, the coordinator's
 * RemotePipeline and Scheduler on top. Reference tokens through 3 stages; 16 concurrent streams
 * identical to each alone; malformed and stale-epoch frames refused with a status while other
 * requests go on; released and cancelled sequences leave no KV cache on any stage.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { status as Status } from '@grpc/grpc-js';
import { Scheduler } from '../../../common/generation/scheduler';
import { sequenceId } from '../../../common/ids';
import { Checkpoint } from '../../../common/model/checkpoint';
import { ForwardClient } from '../../../common/wire/forward-client';
import { RemotePipeline } from '../../../coordinator/remote-pipeline';
import { fixtureDir, loadReference } from '../../support/checkpoints';
import { fixedSource, greedyBatch, greedyThrough, loadPipeline } from '../../support/pipeline';
import { startRemoteStages, type RemoteStages } from '../../support/remote-pipeline';
import { eventually } from '../../support/wait';

const STREAMS = { drainTimeoutMs: 5000, keepaliveTimeMs: 1000, keepaliveTimeoutMs: 1000 };
const ref = loadReference('tiny-mistral');

describe('gRPC data path', () => {
  let ckpt: Checkpoint;
  let cluster: RemoteStages;
  before(async () => {
    ckpt = await Checkpoint.open(fixtureDir('tiny-mistral'));
    cluster = await startRemoteStages(ckpt, { splits: [2, 4] });
  });
  after(async () => cluster.close());

  test('3 stages over gRPC give the reference tokens for every case, and free every cache', async () => {
    const scheduler = new Scheduler(fixedSource(cluster.pipeline), { maxBatchTokens: 256, maxBatchSequences: 16 });
    const tokens = await greedyThrough(scheduler, ref.cases.map((c) => c.prompt_ids), 40, 'ref');
    ref.cases.forEach((c, i) => assert.deepEqual(tokens[i], c.greedy_tokens, `case ${i}`));
    // Releases are sent after the last token.
    const held = () => cluster.hosts.map((h) => h.runner()!.stage.stats.sequenceCount);
    await eventually(() => held().every((n) => n === 0), 5_000, 'every stage to free its sequences');
    assert.deepEqual(held(), [0, 0, 0], 'no stage holds a sequence');
  });

  test('16 concurrent streams each produce exactly what they produce alone', async () => {
    const prompts = Array.from({ length: 16 }, (_, i) => [1, ...Array.from({ length: 3 + (i % 7) }, (_, j) => 100 + ((i * 7919 + j * 104729) % 31000))]);
    const [engine] = await loadPipeline(ckpt, []);
    const alone: number[][] = [];
    for (const [i, p] of prompts.entries()) alone.push((await greedyBatch([engine], [p], 12, `alone${i}`)).tokens[0]);
    await engine.close();
    const scheduler = new Scheduler(fixedSource(cluster.pipeline), { maxBatchTokens: 256, maxBatchSequences: 16 });
    const together = await greedyThrough(scheduler, prompts, 12, 'c');
    together.forEach((t, i) => assert.deepEqual(t, alone[i], `stream ${i}`));
  });

  test('malformed and stale-epoch frames are refused with a status; the pipeline keeps serving', async () => {
    const rejections: { batchId: number; code: number; message: string }[] = [];
    const rogue = new ForwardClient(cluster.servers[1].address, {
      hiddenSize: ckpt.config.hiddenSize,
      ...STREAMS,
      onRejected: (batchId, message, code) => rejections.push({ batchId, code, message }),
    });
    const slice = { id: sequenceId('rogue'), startPosition: 0, tokenCount: 2 };
    await rogue.send({ planEpoch: 0, batchId: 901, stageIndex: 1, slices: [slice], hidden: new Float32Array(2 * 64) }); // stale epoch
    await rogue.send({ planEpoch: 1, batchId: 902, stageIndex: 1, slices: [slice], hidden: new Float32Array(3 * 64) }); // wrong size
    await rogue.send({ planEpoch: 1, batchId: 903, stageIndex: 0, slices: [slice], hidden: new Float32Array(2 * 64) }); // wrong stage
    await eventually(() => [901, 902, 903].every((id) => rejections.some((r) => r.batchId === id)), 5_000, 'the three rejections');
    rogue.close();
    const byBatch = new Map(rejections.map((r) => [r.batchId, r]));
    assert.equal(byBatch.get(901)?.code, Status.FAILED_PRECONDITION);
    assert.match(byBatch.get(901)!.message, /epoch 0/);
    assert.equal(byBatch.get(902)?.code, Status.INVALID_ARGUMENT);
    assert.equal(byBatch.get(903)?.code, Status.FAILED_PRECONDITION);
    const scheduler = new Scheduler(fixedSource(cluster.pipeline), { maxBatchTokens: 256, maxBatchSequences: 16 });
    const [tokens] = await greedyThrough(scheduler, [ref.cases[0].prompt_ids], 40, 'after');
    assert.deepEqual(tokens, ref.cases[0].greedy_tokens);
    assert.equal(cluster.pipeline.isBroken, false);
  });

  test('a cancelled sequence frees its KV cache on every stage', async () => {
    const scheduler = new Scheduler(fixedSource(cluster.pipeline), { maxBatchTokens: 256, maxBatchSequences: 16 });
    let handle: { cancel(): void } | undefined;
    await new Promise<void>((resolve, reject) => {
      let count = 0;
      handle = scheduler.submit({
        id: sequenceId('cancel-me'),
        promptIds: ref.cases[1].prompt_ids,
        sampling: { kind: 'greedy' },
        sink: {
          onToken: () => {
            if (++count === 5) resolve();
            return false;
          },
          onError: reject,
        },
      });
    });
    const holding = await Promise.all(cluster.hosts.map(async (h) => (await h.runner()!.stage.positions([sequenceId('cancel-me')]))[0]));
    assert.ok(holding.every((p) => p !== undefined && p > 0), 'every stage held the sequence while it ran');
    handle!.cancel();
    const positions = () => Promise.all(cluster.hosts.map(async (h) => (await h.runner()!.stage.positions([sequenceId('cancel-me')]))[0]));
    await eventually(async () => (await positions()).every((p) => p === undefined), 5_000, 'every stage to free the cancelled sequence');
    assert.deepEqual(await positions(), [undefined, undefined, undefined], 'every stage freed it');
    assert.equal(scheduler.activeSequences, 0);
  });
});
