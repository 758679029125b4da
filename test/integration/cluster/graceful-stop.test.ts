/**
 * A worker's SIGTERM is a graceful stop: it asks the coordinator to drain it, the stages that
 * take its layers copy its KV caches (hand-over), and it exits once the plan without it serves.
 * Under 8 streams, every output equals the fault-free reference with no replay, the worker exits,
 * and the coordinator records a hand-over pause and no recovery. On a secure cluster the same
 * works by the worker's certificate, while one worker's certificate cannot drain another
 * (PERMISSION_DENIED) and a client key cannot drain at all.
 */
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fetchStatus } from '../../../cli/inference-client';
import { waitFor } from '../../../cli/processes';
import { parseExposition, sampleValue } from '../../../common/metrics/exposition';
import { dialNode, tlsNodeSecurity } from '../../../common/security/node-security';
import { identityCommonName } from '../../../common/security/identity';
import { certFiles } from '../../../common/security/pki-files';
import { boraProto } from '../../../common/wire/proto';
import { fixtureDir } from '../../support/checkpoints';
import { startCluster, startGreedyStreams, untilStreamTokens, type TestCluster } from '../../support/cluster';
import { variedPrompts, inProcessGreedy } from '../../support/pipeline';

const MODEL = fixtureDir('tiny-mistral');
const TOKENS = 120;

const prompts = (count: number): number[][] => variedPrompts(count, { minTokens: 3, lengthCycle: 7, firstId: 80 });

const reference = (ps: readonly (readonly number[])[], steps: number): Promise<number[][]> => inProcessGreedy(MODEL, ps, steps);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERMs `id` under 8 streams and checks the drain: identical outputs, no replay, the worker gone. */
async function sigtermUnderLoad(cluster: TestCluster, id: string): Promise<void> {
  const ps = prompts(8);
  const expected = await reference(ps, TOKENS);
  const results = startGreedyStreams(cluster.file.coordinator, ps, TOKENS, { access: cluster.access });
  await untilStreamTokens(results, 10);
  const worker = cluster.file.workers.find((w) => w.id === id)!;
  const before = await fetchStatus(cluster.file.coordinator, 5000, cluster.adminAccess);
  process.kill(worker.pid, 'SIGTERM');
  await Promise.all(results.map((r) => r.done));
  results.forEach((r, i) => {
    assert.deepEqual(r.tokens, expected[i], `stream ${i}`);
    assert.equal(r.resumes, 0, `stream ${i} was replayed`);
  });
  await waitFor(`${id} to exit`, 30_000, async () => (alive(worker.pid) ? undefined : true));
  const after = await fetchStatus(cluster.file.coordinator, 5000, cluster.adminAccess);
  assert.ok(after.planEpoch > before.planEpoch, 'a new plan');
  assert.ok(!after.workers.some((w) => w.id === id && w.layerEnd > w.layerStart), `${id} holds no layers`);
  if (cluster.file.coordinatorMetrics !== undefined && cluster.file.security === undefined) {
    const m = parseExposition(await (await fetch(`http://${cluster.file.coordinatorMetrics}/metrics`)).text());
    assert.equal(sampleValue(m, 'bora_recovery_seconds_count'), 0, 'a graceful stop is no failure');
    assert.ok(sampleValue(m, 'bora_handover_pause_seconds_count') >= 1);
    assert.ok(sampleValue(m, 'bora_reshards_total', { reason: 'operator' }) >= 1);
  }
}

describe('graceful worker stop (SIGTERM)', () => {
  test('drains by hand-over under load: outputs identical, nothing replayed, the worker exits', async (t) => {
    const cluster = await startCluster(t, MODEL, 3);
    await sigtermUnderLoad(cluster, 'w2');
  });

  test('secure cluster: a worker drains itself by its certificate; not another worker, and not with a client key', async (t) => {
    const cluster = await startCluster(t, MODEL, 3, ['--secure']);
    const pkiDir = join(cluster.stateDir, 'pki');
    const w1 = tlsNodeSecurity(certFiles(pkiDir, identityCommonName({ role: 'worker', id: 'w1' })), 'worker');
    const dial = dialNode(w1, cluster.file.coordinator);
    const client = new (boraProto().Inference)(cluster.file.coordinator, dial.credentials, dial.options);
    t.after(() => client.close());
    const drain = (workerId: string, metadata = new grpc.Metadata()): Promise<grpc.ServiceError | undefined> =>
      new Promise((resolve) => client.drain({ workerId }, metadata, { deadline: Date.now() + 10_000 }, (err) => resolve(err ?? undefined)));
    const other = await drain('w2');
    assert.equal(other?.code, grpc.status.UNAUTHENTICATED, `w1's certificate, no key, draining w2: ${other?.details}`);
    const clientKey = new grpc.Metadata();
    clientKey.set('authorization', `Bearer ${cluster.file.security!.apiKey}`);
    const withClientKey = await drain('w2', clientKey);
    assert.equal(withClientKey?.code, grpc.status.PERMISSION_DENIED, `a client key draining w2: ${withClientKey?.details}`);
    assert.equal((await fetchStatus(cluster.file.coordinator, 5000, cluster.adminAccess)).workers.length, 3, 'nothing was drained');
    await sigtermUnderLoad(cluster, 'w3');
  });
});
