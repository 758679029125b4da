/**
 * bora pki, run as the real command: init, issue and api-key write what they say, and bad input
 * exits with status 2 without writing anything.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { pkiCommand } from '../../../cli/pki';
import { BoraError } from '../../../common/errors';
import { loadApiKeyStore } from '../../../common/security/api-keys-file';
import { verifyCertificate } from '../../../common/security/pki';

const BORA = join(__dirname, '..', '..', '..', 'cli', 'bora.js');

function bora(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [BORA, 'pki', ...args], { encoding: 'utf8', timeout: 30_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('bora pki', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bora-pki-cli-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('init, issue with extra names, and api-key', () => {
    assert.equal(bora('init', '--dir', dir).status, 0);
    assert.equal(statSync(join(dir, 'ca-key.pem')).mode & 0o777, 0o600);
    const issued = bora('issue', '--dir', dir, '--role', 'worker', '--id', 'w1', '--dns', 'localhost', '--dns', 'w1.internal', '--ip', '127.0.0.1', '--ip', '10.0.0.5');
    assert.equal(issued.status, 0, issued.stderr);
    const files = JSON.parse(issued.stdout) as { cert: string; key: string; ca: string };
    assert.equal(files.cert, join(dir, 'worker-w1.pem'));
    assert.deepEqual(verifyCertificate(readFileSync(files.cert), readFileSync(files.ca)), { role: 'worker', id: 'w1' });
    assert.match(readFileSync(files.cert, 'utf8'), /BEGIN CERTIFICATE/);
    assert.equal(statSync(files.key).mode & 0o777, 0o600);

    const made = bora('api-key', '--dir', dir, '--role', 'admin', '--name', 'ops');
    assert.equal(made.status, 0, made.stderr);
    const { key } = JSON.parse(made.stdout) as { key: string };
    assert.match(made.stderr, /shown once/);
    assert.ok(!readFileSync(join(dir, 'api-keys.json'), 'utf8').includes(key));
    assert.deepEqual(loadApiKeyStore(join(dir, 'api-keys.json')).verify(key), { name: 'ops', role: 'admin' });
  });

  test('bad input is INVALID_ARGUMENT (exit status 2) and writes nothing', async () => {
    const cases: string[][] = [
      [],
      ['rotate'],
      ['init'],
      ['init', '--dir', dir], // the CA exists: never replaced
      ['issue', '--dir', dir, '--role', 'root', '--id', 'x'],
      ['issue', '--dir', dir, '--role', 'worker'],
      ['issue', '--dir', dir, '--role', 'worker', '--id', 'w/2'],
      ['issue', '--dir', dir, '--role', 'worker', '--id', 'w2', '--ip', 'localhost'],
      ['issue', '--dir', dir, '--role', 'worker', '--id', 'w2', '--days', '0'],
      ['issue', '--dir', dir, '--role', 'worker', '--id', 'w2', '--bogus'],
      ['api-key', '--dir', dir, '--role', 'worker'],
      ['api-key', '--dir', dir, '--role', 'admin', '--name', 'ops'], // taken
    ];
    // In process (a spawn costs a second each), then three through the real command for the status.
    for (const args of cases) {
      await assert.rejects(pkiCommand(args), (e: unknown) => e instanceof BoraError && e.code === 'INVALID_ARGUMENT', args.join(' '));
    }
    for (const args of [cases[1], cases[4], cases[7]]) {
      const result = bora(...args);
      assert.equal(result.status, 2, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, /^bora: /);
    }
    assert.equal(existsSync(join(dir, 'worker-w2.pem')), false);
  });

  test('issuing without a CA is an error naming the fix', () => {
    const empty = mkdtempSync(join(tmpdir(), 'bora-pki-empty-'));
    try {
      const result = bora('issue', '--dir', empty, '--role', 'worker', '--id', 'w1');
      assert.equal(result.status, 1);
      assert.match(result.stderr, /bora pki init --dir/);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
