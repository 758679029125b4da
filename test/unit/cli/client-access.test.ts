/**
 * Which credentials a client command uses: flags over BORA_API_KEY over cluster.json, the client
 * key for generate and the admin key for status/drain, and no API key ever sent without TLS. And
 * which mode `bora up` picks.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { API_KEY_ENV, resolveAccess } from '../../../cli/client-access';
import { clientChannelCredentials } from '../../../cli/client-credentials';
import type { ClusterSecurity } from '../../../cli/cluster-file';
import { securityMode } from '../../../cli/security-mode';
import { BoraError } from '../../../common/errors';

const block: ClusterSecurity = { ca: '/s/pki/ca.pem', clientCert: '/s/pki/client-local.pem', clientKey: '/s/pki/client-local-key.pem', apiKey: 'bora_client', adminKey: 'bora_admin' };

function invalid(run: () => unknown, pattern: RegExp): void {
  assert.throws(run, (err: unknown) => err instanceof BoraError && err.code === 'INVALID_ARGUMENT' && pattern.test(err.message));
}

describe('resolveAccess', () => {
  test('from cluster.json: the CA and client certificate, the client key for generate, the admin key for status and drain', () => {
    assert.deepEqual(resolveAccess({}, block, 'client', {}), { tls: { ca: block.ca, cert: block.clientCert, key: block.clientKey }, apiKey: 'bora_client' });
    assert.equal(resolveAccess({}, block, 'admin', {})?.apiKey, 'bora_admin');
  });

  test('an insecure cluster (no block, no flags) is plaintext', () => {
    assert.equal(resolveAccess({}, undefined, 'client', {}), undefined);
  });

  test('flags win over BORA_API_KEY, which wins over cluster.json', () => {
    assert.equal(resolveAccess({ 'api-key': 'bora_flag' }, block, 'client', { [API_KEY_ENV]: 'bora_env' })?.apiKey, 'bora_flag');
    assert.equal(resolveAccess({}, block, 'admin', { [API_KEY_ENV]: 'bora_env' })?.apiKey, 'bora_env');
    const byHand = resolveAccess({ ca: '/x/ca.pem', cert: '/x/me.pem', key: '/x/me-key.pem' }, block, 'client', {});
    assert.deepEqual(byHand?.tls, { ca: '/x/ca.pem', cert: '/x/me.pem', key: '/x/me-key.pem' });
  });

  test('by hand: a CA alone is TLS without a client certificate', () => {
    assert.deepEqual(resolveAccess({ ca: '/x/ca.pem', 'api-key': 'bora_k' }, undefined, 'client', {}), { tls: { ca: '/x/ca.pem' }, apiKey: 'bora_k' });
  });

  test('an API key or a certificate without a CA is refused, not sent in clear', () => {
    invalid(() => resolveAccess({ 'api-key': 'bora_k' }, undefined, 'client', {}), /only sent over TLS/);
    invalid(() => resolveAccess({}, undefined, 'client', { [API_KEY_ENV]: 'bora_k' }), /only sent over TLS/);
    invalid(() => resolveAccess({ cert: '/x/me.pem', key: '/x/me-key.pem' }, undefined, 'client', {}), /need --ca/);
  });

  test('channel credentials: a key on a plaintext channel and half a key pair are refused', () => {
    invalid(() => clientChannelCredentials({ apiKey: 'bora_k' }), /only sent over TLS/);
    invalid(() => clientChannelCredentials({ tls: { ca: '/x/ca.pem', cert: '/x/me.pem' } }), /both --cert FILE and --key FILE/);
    assert.ok(clientChannelCredentials(undefined));
  });

  test('a CA file that cannot be read is NOT_FOUND', () => {
    assert.throws(() => clientChannelCredentials({ tls: { ca: '/no/such/ca.pem' } }), (err: unknown) => err instanceof BoraError && err.code === 'NOT_FOUND');
  });
});

describe('securityMode', () => {
  test('--secure and --insecure choose; neither gives the default; both is an error', () => {
    assert.equal(securityMode({ secure: true }, false), 'secure');
    assert.equal(securityMode({ insecure: true }, true), 'insecure');
    assert.equal(securityMode({}, true), 'secure');
    assert.equal(securityMode({}, false), 'insecure');
    invalid(() => securityMode({ secure: true, insecure: true }), /not both/);
  });
});
