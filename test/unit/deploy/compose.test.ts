/**
 * The deployment files, as far as this machine can test them (there is no Docker engine here):
 * every `bora` command docker-compose.yml runs is accepted by the CLI (its flags parsed and
 * validated with BORA_CHECK_ARGS=1), the services it needs are there, and the Dockerfile copies
 * only paths that exist.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { repoRoot } from '../../support/checkpoints';
import { boraBin } from '../../support/cluster';

const compose = readFileSync(join(repoRoot(), 'docker-compose.yml'), 'utf8');

/** `command: [...]` flow arrays of the bora services (JSON syntax inside YAML), joined across lines. */
function boraCommands(): string[][] {
  const commands: string[][] = [];
  const pattern = /command:\s*(\[[^\]]*\])/g;
  for (let m = pattern.exec(compose); m !== null; m = pattern.exec(compose)) commands.push(JSON.parse(m[1]) as string[]);
  return commands;
}

describe('docker-compose.yml and Dockerfile', () => {
  test('declares etcd, a coordinator and three workers', () => {
    for (const service of ['etcd', 'coordinator', 'worker1', 'worker2', 'worker3']) {
      assert.match(compose, new RegExp(`^  ${service}:`, 'm'), `service ${service}`);
    }
  });

  test('every bora command it runs is accepted by the CLI', () => {
    const commands = boraCommands();
    assert.deepEqual(commands.map((c) => c[0]).sort(), ['coordinator', 'worker', 'worker', 'worker']);
    for (const argv of commands) {
      // The coordinator's --model is a path inside the container; validation does not read it.
      execFileSync(process.execPath, [boraBin(), ...argv], { env: { ...process.env, BORA_CHECK_ARGS: '1' }, stdio: 'pipe' });
    }
  });

  test('a wrong flag in such a command would be caught', () => {
    // The CLI itself must refuse the flag (usage error, exit 2), not fail for another reason
    // such as a missing dist/.
    assert.throws(
      () =>
        execFileSync(process.execPath, [boraBin(), 'worker', '--etcd', 'http://etcd:2379', '--listen', '0.0.0.0:7100', '--no-such-flag'], {
          env: { ...process.env, BORA_CHECK_ARGS: '1' },
          stdio: 'pipe',
        }),
      (err: unknown) => {
        const failed = err as { status?: number | null; stderr?: Buffer };
        assert.match(String(failed.stderr), /^bora: Unknown option '--no-such-flag'$/m);
        assert.equal(failed.status, 2);
        return true;
      },
    );
  });

  test('the Dockerfile copies only paths that exist and runs the bora CLI', () => {
    const dockerfile = readFileSync(join(repoRoot(), 'Dockerfile'), 'utf8');
    const copies = [...dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) => m[1].split(/\s+/));
    assert.ok(copies.length > 0);
    for (const path of copies) assert.ok(existsSync(join(repoRoot(), path)), `COPY ${path}`);
    assert.match(dockerfile, /ENTRYPOINT \["node", "dist\/cli\/bora\.js"\]/);
  });
});
