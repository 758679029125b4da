/**
 * The model registry against a real etcd: add (once per NAME@VERSION), list, remove (refused
 * while the plan serves the version, checked in the same transaction as the delete), failure
 * reports marking a version failed; the same through `bora models --state-dir` (the CLI writing
 * etcd as the cluster's admin) with its exit statuses.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import { EtcdKeys } from '../../../common/cluster/etcd-keys';
import { PlanStore } from '../../../common/cluster/plan-store';
import type { Plan } from '../../../common/cluster/plan';
import { FailedPreconditionError, NotFoundError } from '../../../common/errors';
import { workerId } from '../../../common/ids';
import { ModelRegistry } from '../../../common/models/model-registry';
import { describeModelVersion } from '../../../common/models/weight-digests';
import type { ModelVersionRecord } from '../../../common/models/version-record';
import { writeClusterFile } from '../../../cli/cluster-file';
import { fixtureDir, tempDir } from '../../support/checkpoints';
import { boraBin } from '../../support/cluster';
import { etcdSuite } from '../../support/etcd';

const run = promisify(execFile);

function plan(epoch: number, modelVersion: string | undefined): Plan {
  return { epoch, modelId: 'tiny-mistral', ...(modelVersion === undefined ? {} : { modelVersion }), numLayers: 2, stages: [{ range: { start: 0, end: 2 }, workers: [workerId('w1')] }] };
}

/** Runs the CLI; resolves with its exit status, stdout and stderr. */
async function bora(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [boraBin(), ...args], { timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('model registry in etcd', () => {
  const suite = etcdSuite();
  let v1: ModelVersionRecord | undefined;
  const record = async (version: string): Promise<ModelVersionRecord> => {
    v1 ??= await describeModelVersion({ name: 'tiny', version: 'v1' }, fixtureDir('tiny-mistral'));
    return { ...v1, version };
  };

  test('adds a version once, lists it, and refuses to remove it while the plan serves it', { timeout: 20_000 }, async () => {
    const keys = new EtcdKeys('/reg');
    const registry = new ModelRegistry(suite.client, keys);
    const plans = new PlanStore({ client: suite.client, keys, log: suite.log });
    await registry.add(await record('v1'));
    await registry.add(await record('v2'));
    await assert.rejects(registry.add(await record('v1')), (err: unknown) => err instanceof FailedPreconditionError && /tiny@v1 is already registered/.test(err.message));
    assert.deepEqual((await registry.list()).map((v) => [v.record.version, v.status]), [['v1', 'ready'], ['v2', 'ready']]);
    assert.deepEqual(await registry.get({ name: 'tiny', version: 'v1' }), await record('v1'));
    await assert.rejects(registry.require({ name: 'tiny', version: 'v9' }), NotFoundError);

    await plans.publish(plan(1, 'tiny@v1'));
    await assert.rejects(registry.remove({ name: 'tiny', version: 'v1' }), (err: unknown) => err instanceof FailedPreconditionError && /tiny@v1 serves traffic \(plan epoch 1\)/.test(err.message));
    assert.notEqual(await registry.get({ name: 'tiny', version: 'v1' }), undefined, 'still registered');
    await registry.remove({ name: 'tiny', version: 'v2' }); // not served: removed
    assert.deepEqual((await registry.list()).map((v) => v.record.version), ['v1']);
    await assert.rejects(registry.remove({ name: 'tiny', version: 'v2' }), NotFoundError);

    // Once the plan serves something else, the version can go.
    await plans.publish(plan(2, undefined));
    await registry.remove({ name: 'tiny', version: 'v1' });
    assert.deepEqual(await registry.list(), []);
  });

  test("a worker's failure report marks the version failed until it is removed", { timeout: 20_000 }, async () => {
    const keys = new EtcdKeys('/fail');
    const registry = new ModelRegistry(suite.client, keys);
    await registry.add(await record('v1'));
    const ref = { name: 'tiny', version: 'v1' };
    assert.equal((await registry.requireServable(ref)).version, 'v1');
    const failure = { worker: 'w3', ref: 'tiny@v1', file: '/models/tiny-mistral/model.safetensors', expectedSha256: 'a'.repeat(64), actualSha256: 'b'.repeat(64), at: new Date().toISOString() };
    await registry.reportFailure(workerId('w3'), failure);
    assert.equal(await suite.client.get(keys.modelFailure(workerId('w3'), 'tiny@v1')).string(), JSON.stringify(failure), 'under the worker\'s own key');
    const described = await registry.describe(ref);
    assert.equal(described.status, 'failed');
    assert.deepEqual(described.failures, [failure]);
    await assert.rejects(registry.requireServable(ref), (err: unknown) => err instanceof FailedPreconditionError && /marked failed: worker w3 found \/models\/tiny-mistral\/model.safetensors/.test(err.message));
    await registry.remove(ref);
    assert.deepEqual(await suite.client.getAll().prefix(keys.modelFailuresPrefix()).keys(), [], 'the reports went with the record');
    // A report that arrives while the version is being removed does not fail a later record of the same name.
    await registry.reportFailure(workerId('w3'), failure);
    await registry.add(await record('v1'));
    assert.equal((await registry.describe(ref)).status, 'ready');
  });

  test('bora models add | list | remove --state-dir: exit statuses and messages', { timeout: 120_000 }, async (t) => {
    const stateDir = await tempDir(t, 'models-cli');
    writeClusterFile(stateDir, { coordinator: '127.0.0.1:1', etcd: suite.etcd.url, workers: [], coordinatorPid: 0, etcdPid: null, modelDir: fixtureDir('tiny-mistral') });
    const flags = ['--state-dir', stateDir, '--prefix', '/cli'];
    const added = await bora(['models', 'add', ...flags, 'tiny@v1', fixtureDir('tiny-mistral')]);
    assert.equal(added.code, 0, added.stderr);
    assert.match(added.stdout, /^added tiny@v1: 1 weight file\(s\), \d+ bytes, \d+ tensors$/m);
    const again = await bora(['models', 'add', ...flags, 'tiny@v1', fixtureDir('tiny-mistral')]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /tiny@v1 is already registered/);
    const malformed = await bora(['models', 'add', ...flags, 'tiny@v1@x', fixtureDir('tiny-mistral')]);
    assert.equal(malformed.code, 2);
    assert.match(malformed.stderr, /more than one "@"/);
    const missing = await bora(['models', 'add', ...flags, 'tiny@v2', join(stateDir, 'no-such-model')]);
    assert.equal(missing.code, 2, missing.stderr);
    assert.match(missing.stderr, /no-such-model/);

    const listed = await bora(['models', 'list', ...flags, '--json']);
    assert.equal(listed.code, 0, listed.stderr);
    const entries = JSON.parse(listed.stdout) as { ref: string; status: string; files: { sha256: string }[] }[];
    assert.deepEqual(entries.map((e) => [e.ref, e.status]), [['tiny@v1', 'ready']]);
    assert.equal(entries[0].files[0].sha256, (await record('v1')).files[0].sha256);

    await new PlanStore({ client: suite.client, keys: new EtcdKeys('/cli'), log: suite.log }).publish(plan(1, 'tiny@v1'));
    const refused = await bora(['models', 'remove', ...flags, 'tiny@v1']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /tiny@v1 serves traffic/);
    const unknown = await bora(['models', 'remove', ...flags, 'tiny@v7']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /tiny@v7 is not registered/);
    assert.match((await bora(['models', 'list', ...flags])).stdout, /^tiny@v1\tready\thub\tmistral 6 layers, hidden 64\t\d+ bytes\t\S*tiny-mistral$/m);
  });
});
