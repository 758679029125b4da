/**
 * The flags `bora up` (and the chaos harness) give nodes: each its own certificate files, the audit
 * log, the coordinator the API key hashes; and `--insecure` for a plaintext node only once nodes
 * are secure by default.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { LocalPki } from '../../../cli/local-pki';
import { coordinatorSecurityArgs, insecureNodeArgs, workerSecurityArgs } from '../../../cli/node-security-args';

const files = (name: string) => ({ ca: '/s/pki/ca.pem', cert: `/s/pki/${name}.pem`, key: `/s/pki/${name}-key.pem` });
const pki: LocalPki = {
  dir: '/s/pki',
  etcd: files('etcd-local'),
  coordinator: files('coordinator-c1'),
  workers: new Map([['w1', files('worker-w1')]]),
  admin: files('admin-local'),
  client: files('client-local'),
  apiKeysFile: '/s/pki/api-keys.json',
  apiKey: 'bora_c',
  adminKey: 'bora_a',
};

describe('node security args', () => {
  test('the coordinator: its certificate, the API key hashes, the audit log', () => {
    assert.deepEqual(coordinatorSecurityArgs(pki, '/s/audit.log'), [
      '--ca', '/s/pki/ca.pem', '--cert', '/s/pki/coordinator-c1.pem', '--key', '/s/pki/coordinator-c1-key.pem',
      '--api-keys', '/s/pki/api-keys.json', '--audit-log', '/s/audit.log',
    ]);
  });

  test('a worker: its own certificate and the audit log; an unknown worker is a bug', () => {
    assert.deepEqual(workerSecurityArgs(pki, 'w1', '/s/audit.log'), ['--ca', '/s/pki/ca.pem', '--cert', '/s/pki/worker-w1.pem', '--key', '/s/pki/worker-w1-key.pem', '--audit-log', '/s/audit.log']);
    assert.throws(() => workerSecurityArgs(pki, 'w2', '/s/audit.log'), /no certificate/);
  });

  test('--insecure only once nodes are secure by default', () => {
    assert.deepEqual(insecureNodeArgs(false), []);
    assert.deepEqual(insecureNodeArgs(true), ['--insecure']);
  });
});
