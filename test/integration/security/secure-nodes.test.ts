/**
 * The real nodes with transport security, in process: etcd over TLS with client certificates, a
 * CoordinatorNode and two WorkerNodes each on its own certificate. Worker w1 has no copy of the
 * model, so its engine thread fetches the weights from the coordinator over TLS. Generation
 * through the coordinator's TLS port gives the reference tokens; the Status RPC sees every worker
 * ready (its probes dial the workers with the coordinator's certificate).
 */
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { dirname } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { GenerationEvent } from '../../../common/generation/request';
import { workerId } from '../../../common/ids';
import { tlsNodeSecurity } from '../../../common/security/node-security';
import { eventFromWire, requestToWire } from '../../../common/wire/generate-codec';
import type { GenerateEvent } from '../../../common/wire/messages';
import { boraProto, type InferenceClient } from '../../../common/wire/proto';
import { CoordinatorNode } from '../../../coordinator/coordinator-node';
import { WorkerNode } from '../../../worker/worker-node';
import { fixtureDir, loadReference } from '../../support/checkpoints';
import { eventually } from '../../support/wait';
import { type TlsEtcd, startTlsEtcd } from '../../support/etcd-tls';
import { greedyIds } from '../../support/cluster';
import { callbackLogger } from '../../../common/logging/logger';

const ref = loadReference('tiny-mistral');
const KEEPALIVE_MS = 1000;
const quiet = callbackLogger((m) => void (process.env.BORA_TEST_LOG === '1' && process.stderr.write(`${m}\n`)));

describe('coordinator and workers over TLS (etcd too)', () => {
  let etcd: TlsEtcd;
  let coordinator: CoordinatorNode;
  const workers: WorkerNode[] = [];

  before(async () => {
    etcd = await startTlsEtcd();
    const modelDir = fixtureDir('tiny-mistral');
    coordinator = new CoordinatorNode({
      etcdUrl: etcd.url,
      listenHost: '127.0.0.1',
      listenPort: 0,
      modelDir,
      modelId: 'tiny-mistral',
      expertsMode: 'local',
      replicas: 1,
      leaseTtlMs: 3000,
      stepTimeoutMs: 30_000,
      readyTimeoutMs: 120_000,
      replanDebounceMs: 200,
      keepaliveTimeMs: KEEPALIVE_MS,
      keepaliveTimeoutMs: KEEPALIVE_MS,
      maxBatchTokens: 512,
      maxBatchSequences: 32,
      security: tlsNodeSecurity(await etcd.pki.issue('coordinator', 'c1'), 'coordinator'),
      log: quiet,
    });
    await coordinator.start();
    for (const [id, modelsDir] of [['w0', dirname(modelDir)], ['w1', undefined]] as const) {
      const worker = new WorkerNode({
        id: workerId(id),
        etcdUrl: etcd.url,
        listenHost: '127.0.0.1',
        listenPort: 0,
        modelsDir,
        memoryBytes: 9 * 1024 * 1024, // less than the model needs (12.9 MB): the coordinator splits it over both
        compute: { threads: 1 },
        leaseTtlMs: 3000,
        keepaliveTimeMs: KEEPALIVE_MS,
        keepaliveTimeoutMs: KEEPALIVE_MS,
        security: tlsNodeSecurity(await etcd.pki.issue('worker', id), 'worker'),
        log: quiet,
      });
      workers.push(worker);
      await worker.start();
    }
  });
  after(async () => {
    for (const w of workers) await w.stop();
    await coordinator?.stop();
    await etcd?.stop();
  });

  test('generation through 2 TLS stages gives the reference tokens; Status sees both workers ready', async () => {
    await eventually(async () => (await coordinator.status()).settled, 30_000, 'the plan to settle');
    const status = await coordinator.status();
    assert.equal(status.workers.length, 2);
    assert.ok(status.workers.every((w) => w.ready), JSON.stringify(status.workers));
    assert.ok(status.workers.every((w) => w.layerEnd > w.layerStart), 'both workers hold layers');

    const ca = Buffer.from(etcd.pki.ca.certPem);
    const client = new (boraProto().Inference)(coordinator.address, grpc.credentials.createSsl(ca), { 'grpc.ssl_target_name_override': 'localhost' }) as InferenceClient;
    try {
      const c = ref.cases[0];
      const tokens: number[] = [];
      await new Promise<void>((resolve, reject) => {
        const call = client.generate(requestToWire(greedyIds(c.prompt_ids, 16)), { deadline: Date.now() + 60_000 });
        call.on('data', (event: GenerateEvent) => {
          const e: GenerationEvent = eventFromWire(event);
          if (e.type === 'token') tokens.push(e.tokenId);
        });
        call.on('error', reject);
        call.on('end', () => resolve());
      });
      assert.deepEqual(tokens, c.greedy_tokens.slice(0, 16));
    } finally {
      client.close();
    }
  });
});
