/**
 * Structured logs and load progress on a real `bora up` cluster: every node's log file is JSON
 * lines carrying node, role and plan epoch; a request's x-request-id comes back in the response's
 * initial metadata and shows up in the coordinator's lines and in every stage's; a request
 * without one gets a fresh id; each worker's load gauges end at their totals.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Metadata } from '@grpc/grpc-js';
import { inferenceClient } from '../../../cli/inference-client';
import { fetchWorkerLoad } from '../../../cli/load-progress-line';
import { requestToWire } from '../../../common/wire/generate-codec';
import type { GenerateEvent } from '../../../common/wire/messages';
import { fixtureDir } from '../../support/checkpoints';
import { greedyIds, startCluster, type TestCluster } from '../../support/cluster';
import { eventually } from '../../support/wait';

const WORKERS = 3;
type Line = Record<string, unknown>;

/** Every line of a node's log file, parsed (a line that is not JSON fails the test). */
function linesOf(cluster: TestCluster, node: string): Line[] {
  return readFileSync(join(cluster.stateDir, `${node}.log`), 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l, i) => {
      try {
        return JSON.parse(l) as Line;
      } catch {
        throw new Error(`${node}.log line ${i + 1} is not JSON: ${l.slice(0, 200)}`);
      }
    });
}

/** Generate with the given metadata; resolves with the initial metadata's x-request-id and the token count. */
function generateWith(cluster: TestCluster, metadata: Metadata): Promise<{ requestId: string | undefined; tokens: number }> {
  const client = inferenceClient(cluster.file.coordinator);
  const call = client.generate(requestToWire(greedyIds([1, 415, 2936], 4)), metadata, { deadline: Date.now() + 60_000 });
  let requestId: string | undefined;
  let tokens = 0;
  call.on('metadata', (md: Metadata) => (requestId = md.get('x-request-id').map(String)[0]));
  call.on('data', (e: GenerateEvent) => void (e.token != null && tokens++));
  return new Promise((resolve, reject) => {
    call.on('error', reject);
    call.on('end', () => {
      client.close();
      resolve({ requestId, tokens });
    });
  });
}

describe('request ids and structured logs across a cluster', () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await startCluster(undefined, fixtureDir('tiny-mistral'), WORKERS);
  });
  after(async () => cluster.down());

  test('an x-request-id is returned and appears in the coordinator\'s and every stage\'s log lines', async () => {
    const id = `it-${process.pid}-${Date.now()}`;
    const metadata = new Metadata();
    metadata.set('x-request-id', id);
    const reply = await generateWith(cluster, metadata);
    assert.equal(reply.requestId, id, 'the response\'s initial metadata returns the id');
    assert.equal(reply.tokens, 4);

    // Logs are written asynchronously: wait until each node has flushed its lines about the request.
    const workers = cluster.file.workers.map((w) => w.id);
    assert.equal(workers.length, WORKERS);
    await eventually(() => ['coordinator', ...workers].every((n) => linesOf(cluster, n).some((l) => l.requestId === id)), 10_000, 'the request id in every node\'s log');

    const coordinator = linesOf(cluster, 'coordinator').filter((l) => l.requestId === id);
    assert.ok(coordinator.some((l) => l.msg === 'Generate received'), 'the coordinator logs the request');
    const finished = coordinator.find((l) => l.msg === 'sequence finished');
    assert.ok(finished !== undefined, 'the coordinator logs the sequence finishing');
    assert.equal(finished.generatedTokens, 4);
    const sequenceId = finished.sequenceId;
    assert.equal(typeof sequenceId, 'string');
    for (const line of coordinator) {
      assert.equal(line.role, 'coordinator');
      assert.equal(line.node, cluster.file.coordinator);
      assert.ok(typeof line.epoch === 'number' && line.epoch > 0, `a serving coordinator's line carries its plan epoch: ${JSON.stringify(line)}`);
    }

    // Each stage logs the sequence's opening with the request id and the same sequence id.
    const stages = new Set<number>();
    for (const worker of workers) {
      const lines = linesOf(cluster, worker).filter((l) => l.requestId === id);
      const opened = lines.find((l) => l.msg === 'sequence opened');
      assert.ok(opened !== undefined, `${worker} logs the sequence it serves for the request`);
      assert.equal(opened.sequenceId, sequenceId, `${worker} names the same sequence as the coordinator`);
      assert.equal(opened.node, worker);
      assert.equal(opened.role, 'worker');
      assert.equal(opened.level, 'info');
      assert.equal(opened.epoch, finished.epoch, `${worker} serves the coordinator's plan`);
      stages.add(opened.stage as number);
    }
    assert.deepEqual([...stages].sort(), [0, 1, 2], 'one line per stage');
  });

  test('a request without an id gets a new one, returned and logged; a malformed one is refused', async () => {
    const reply = await generateWith(cluster, new Metadata());
    assert.match(reply.requestId ?? '', /^[0-9a-f-]{36}$/, 'a UUID made by the coordinator');
    await eventually(() => linesOf(cluster, 'coordinator').some((l) => l.requestId === reply.requestId && l.msg === 'sequence finished'), 10_000, 'the new id in the coordinator log');

    const bad = new Metadata();
    bad.set('x-request-id', 'has space');
    await assert.rejects(generateWith(cluster, bad), (err: Error & { code?: number }) => err.code === 3 && /x-request-id must be/.test(err.message));
  });

  test('every line of every node\'s log is JSON with level, time, msg, node, role and epoch', () => {
    for (const node of ['coordinator', ...cluster.file.workers.map((w) => w.id)]) {
      const lines = linesOf(cluster, node);
      assert.ok(lines.length > 3, `${node} logged`);
      for (const l of lines) {
        for (const field of ['level', 'time', 'msg', 'node', 'role', 'epoch']) assert.ok(field in l, `${node}: ${field} missing in ${JSON.stringify(l)}`);
      }
    }
  });

  test('each worker\'s load gauges end at their totals, and the stages cover the model', async () => {
    const layers = (JSON.parse(readFileSync(join(fixtureDir('tiny-mistral'), 'config.json'), 'utf8')) as { num_hidden_layers: number }).num_hidden_layers;
    let covered = 0;
    for (const w of cluster.file.workers) {
      const load = await fetchWorkerLoad(w.metrics!);
      assert.ok(load !== undefined, `${w.id} reports its load`);
      assert.ok(load.layersTotal > 0 && load.layersLoaded === load.layersTotal, `${w.id}: ${JSON.stringify(load)}`);
      assert.ok(load.bytesLoaded > 0 && load.bytesTotal === load.bytesLoaded, `${w.id}: ${JSON.stringify(load)}`);
      covered += load.layersTotal;
      const done = linesOf(cluster, w.id).find((l) => l.done === true && typeof l.bytesLoaded === 'number');
      assert.ok(done !== undefined, `${w.id} logs the end of its load`);
      assert.equal(done.bytesLoaded, load.bytesLoaded);
    }
    assert.equal(covered, layers, 'the stages hold every layer once');
  });
});
