/**
 * `bora up` fails as soon as a node it started exits (a refused command line, a crash), naming the
 * node and its log's last line, instead of waiting out --timeout-ms; and `down` still stops the rest.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fixtureDir, tempDir } from '../../support/checkpoints';
import { boraBin } from '../../support/cluster';

test('a worker that refuses its flags fails bora up at once, with its message', async (t) => {
  const stateDir = await tempDir(t, 'up-fail-fast');
  const started = Date.now();
  const up = spawnSync(
    process.execPath,
    [boraBin(), 'up', '--insecure', '--model', fixtureDir('tiny-mistral'), '--workers', '1', '--state-dir', stateDir, '--memory-bytes', 'lots', '--timeout-ms', '90000'],
    { encoding: 'utf8', timeout: 120_000 },
  );
  const down = spawnSync(process.execPath, [boraBin(), 'down', '--state-dir', stateDir], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(up.status, 1, up.stderr);
  assert.match(up.stderr, /w1 exited while the cluster started .*--memory-bytes must be an integer/);
  assert.ok(Date.now() - started < 60_000, `took ${Date.now() - started} ms`);
  assert.equal(down.status, 0, down.stderr);
});
