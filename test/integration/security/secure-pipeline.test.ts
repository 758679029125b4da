/**
 * The data path over mutual TLS: two stages of tiny-mistral on Worker servers that accept only
 * certificates from the test CA, the coordinator's RemotePipeline dialing stage 0 and subscribing
 * to the last stage's results with its certificate, stage 0 forwarding to stage 1 with its own.
 * The tokens equal the plaintext run's (and the reference), so TLS demonstrably carries every hop;
 * a plaintext sender and an out-of-plan worker are refused on the same servers meanwhile.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { status as Status } from '@grpc/grpc-js';
import type { Pipeline } from '../../../common/generation/pipeline';
import { Scheduler } from '../../../common/generation/scheduler';
import { sequenceId } from '../../../common/ids';
import { Checkpoint } from '../../../common/model/checkpoint';
import { INSECURE, type NodeSecurity, tlsNodeSecurity } from '../../../common/security/node-security';
import { ForwardClient } from '../../../common/wire/forward-client';
import { RemotePipeline } from '../../../coordinator/remote-pipeline';
import { fixtureDir, loadReference } from '../../support/checkpoints';
import { fixedSource, greedyThrough } from '../../support/pipeline';
import { startRemoteStages, type RemoteStages } from '../../support/remote-pipeline';
import { type TestPki, testPki } from '../../support/security';

const STREAMS = { drainTimeoutMs: 5000, keepaliveTimeMs: 1000, keepaliveTimeoutMs: 1000 };
const ref = loadReference('tiny-mistral');
const STEPS = 24;

/** How a Forward stream from `security` to `address` ends: 'acked' or the gRPC status code. */
function forwardOutcome(address: string, security: NodeSecurity, hiddenSize: number): Promise<'acked' | number> {
  return new Promise((resolve) => {
    const client: ForwardClient = new ForwardClient(address, {
      hiddenSize,
      ...STREAMS,
      security,
      onRejected: () => {
        resolve('acked');
        client.close();
      },
      onBroken: (err) => resolve((err as { code?: number }).code ?? -1),
    });
    client.send({ planEpoch: 0, batchId: 1, stageIndex: 1, slices: [{ id: sequenceId('x'), startPosition: 0, tokenCount: 1 }], hidden: new Float32Array(hiddenSize) }).catch(() => undefined);
  });
}

function generate(pipeline: Pipeline, prompts: readonly (readonly number[])[], tag: string): Promise<number[][]> {
  return greedyThrough(new Scheduler(fixedSource(pipeline), { maxBatchTokens: 256, maxBatchSequences: 16 }), prompts, STEPS, tag);
}

describe('the data path over mutual TLS', () => {
  let pki: TestPki;
  let ckpt: Checkpoint;
  let secure: RemoteStages;
  let prompts: (readonly number[])[];
  let plaintextTokens: number[][];

  before(async () => {
    pki = await testPki();
    ckpt = await Checkpoint.open(fixtureDir('tiny-mistral'));
    prompts = ref.cases.map((c) => c.prompt_ids);
    const plaintext = await startRemoteStages(ckpt, { splits: [3] });
    try {
      plaintextTokens = await generate(plaintext.pipeline, prompts, 'plain');
    } finally {
      await plaintext.close();
    }
    const workers = [tlsNodeSecurity(await pki.issue('worker', 'w0'), 'worker'), tlsNodeSecurity(await pki.issue('worker', 'w1'), 'worker')];
    secure = await startRemoteStages(ckpt, { splits: [3], workers, coordinator: tlsNodeSecurity(await pki.issue('coordinator', 'c1'), 'coordinator') });
  });
  after(async () => {
    await secure?.close();
    pki?.remove();
  });

  test('2 stages over TLS give the same tokens as over plaintext, and the reference', async () => {
    const tokens = await generate(secure.pipeline, prompts, 'tls');
    assert.deepEqual(tokens, plaintextTokens);
    ref.cases.forEach((c, i) => assert.deepEqual(tokens[i], c.greedy_tokens.slice(0, STEPS), `case ${i}`));
  });

  test('meanwhile a plaintext sender and a worker outside the plan are refused; the pipeline keeps serving', async () => {
    const hidden = ckpt.config.hiddenSize;
    const plaintext = await forwardOutcome(secure.servers[1].address, INSECURE, hidden);
    assert.equal(plaintext, Status.UNAVAILABLE);
    const outsider = await forwardOutcome(secure.servers[1].address, tlsNodeSecurity(await pki.issue('worker', 'w7')), hidden);
    assert.equal(outsider, Status.PERMISSION_DENIED);
    const [tokens] = await generate(secure.pipeline, [prompts[0]], 'after');
    assert.deepEqual(tokens, plaintextTokens[0]);
    assert.equal(secure.pipeline.isBroken, false);
  });
});
