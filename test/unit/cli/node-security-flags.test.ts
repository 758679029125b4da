/**
 * The transport security flags of bora worker and bora coordinator, run as the real commands with
 * BORA_CHECK_ARGS=1 (flags checked and certificates loaded, nothing started): a full certificate
 * set or --insecure; mixed, partial, wrong-role or mismatched sets exit 2 with a clear message.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { nodeSecurityFromFlags } from '../../../cli/node-security-flags';
import { fixtureDir } from '../../support/checkpoints';
import { type TestPki, testPki } from '../../support/security';

const BORA = join(__dirname, '..', '..', '..', 'cli', 'bora.js');

function bora(...args: string[]): { status: number | null; stderr: string } {
  const result = spawnSync(process.execPath, [BORA, ...args], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, BORA_CHECK_ARGS: '1' } });
  return { status: result.status, stderr: result.stderr };
}

describe('--ca/--cert/--key and --insecure', () => {
  let pki: TestPki;
  let worker: string[];
  let coordinator: string[];
  before(async () => {
    pki = await testPki();
    const w = await pki.issue('worker', 'w1');
    const c = await pki.issue('coordinator', 'c1');
    worker = ['--ca', w.ca, '--cert', w.cert, '--key', w.key];
    coordinator = ['--ca', c.ca, '--cert', c.cert, '--key', c.key];
  });
  after(() => pki?.remove());

  const workerArgs = ['worker', '--etcd', 'http://127.0.0.1:2379', '--listen', '127.0.0.1:0'];
  const coordinatorArgs = ['coordinator', '--etcd', 'http://127.0.0.1:2379', '--listen', '127.0.0.1:0', '--model', fixtureDir('tiny-mistral')];

  test('a worker with its certificate, or with --insecure, passes the check', () => {
    assert.equal(bora(...workerArgs, ...worker).status, 0);
    assert.equal(bora(...workerArgs, ...worker, '--id', 'w1', '--audit-log', join(pki.dir, 'audit.jsonl')).status, 0);
    assert.equal(bora(...workerArgs, '--insecure').status, 0);
    assert.equal(bora(...coordinatorArgs, ...coordinator).status, 0);
  });

  test('--insecure with certificate flags exits 2', () => {
    const r = bora(...workerArgs, ...worker, '--insecure');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--insecure cannot be combined/);
  });

  test('a partial certificate set exits 2', () => {
    const r = bora(...workerArgs, '--cert', worker[3]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--ca, --cert and --key go together/);
  });

  test("a certificate of another role, or another worker's id, exits 2", () => {
    const wrongRole = bora(...workerArgs, ...coordinator);
    assert.equal(wrongRole.status, 2);
    assert.match(wrongRole.stderr, /coordinator certificate.*needs a worker certificate/);
    assert.equal(bora(...coordinatorArgs, ...worker).status, 2);
    const wrongId = bora(...workerArgs, ...worker, '--id', 'w2');
    assert.equal(wrongId.status, 2);
    assert.match(wrongId.stderr, /--id w2 does not match the certificate's worker\/w1/);
  });

  test('unreadable or mismatched files exit 2', () => {
    assert.equal(bora(...workerArgs, '--ca', worker[1], '--cert', worker[3], '--key', coordinator[5]).status, 2);
    const missing = bora(...workerArgs, '--ca', worker[1], '--cert', join(pki.dir, 'missing.pem'), '--key', worker[5]);
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /missing\.pem/);
  });

  test('neither mode is refused (a node is secure unless told --insecure), and the identity comes from the certificate', () => {
    assert.throws(() => nodeSecurityFromFlags({}, 'worker'), /give the node its certificate \(--ca, --cert and --key\), or --insecure/);
    const none = bora(...workerArgs);
    assert.equal(none.status, 2);
    assert.match(none.stderr, /or --insecure for a plaintext node/);
    assert.equal(nodeSecurityFromFlags({ insecure: true }, 'worker').kind, 'insecure');
    const security = nodeSecurityFromFlags({ ca: worker[1], cert: worker[3], key: worker[5] }, 'worker');
    assert.equal(security.kind, 'tls');
    assert.deepEqual(security.kind === 'tls' ? security.self : undefined, { role: 'worker', id: 'w1' });
  });
});
