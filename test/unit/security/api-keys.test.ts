/**
 * API keys: the format, hashing, the bearer header, and every refusal (missing, malformed, unknown,
 * wrong role), plus the keys file.
 */
import { Metadata } from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { BoraError, PermissionDeniedError, UnauthenticatedError } from '../../../common/errors';
import { ApiKeyStore, bearerKey, generateApiKey, hashApiKey, isWellFormedApiKey } from '../../../common/security/api-keys';
import { addApiKey, loadApiKeyStore, parseApiKeysFile, readApiKeysFile } from '../../../common/security/api-keys-file';

function bearer(value?: string | string[]): Metadata {
  const metadata = new Metadata();
  for (const v of value === undefined ? [] : Array.isArray(value) ? value : [value]) metadata.add('authorization', v);
  return metadata;
}

const clientKey = generateApiKey();
const adminKey = generateApiKey();
const store = new ApiKeyStore([
  { name: 'app', role: 'client', sha256: hashApiKey(clientKey), createdAtMs: 1 },
  { name: 'ops', role: 'admin', sha256: hashApiKey(adminKey), createdAtMs: 2 },
]);

const isUnauthenticated = (pattern: RegExp) => (e: unknown) => e instanceof UnauthenticatedError && e.code === 'UNAUTHENTICATED' && pattern.test(e.message);

describe('API keys', () => {
  test('keys are bora_-prefixed, 256-bit, distinct; the hash is SHA-256 hex', () => {
    const keys = new Set(Array.from({ length: 100 }, generateApiKey));
    assert.equal(keys.size, 100);
    for (const key of keys) assert.ok(isWellFormedApiKey(key) && key.startsWith('bora_') && key.length === 48, key);
    assert.match(hashApiKey(clientKey), /^[0-9a-f]{64}$/);
    assert.notEqual(hashApiKey(clientKey), hashApiKey(adminKey));
  });

  test('a known key with an allowed role passes and names its principal', () => {
    assert.deepEqual(store.authorize(bearer(`Bearer ${clientKey}`), ['client', 'admin'], 'Generate'), { name: 'app', role: 'client' });
    assert.deepEqual(store.authorize(bearer(`bearer ${adminKey}`), ['admin'], 'Drain'), { name: 'ops', role: 'admin' });
  });

  test('missing header: UNAUTHENTICATED', () => {
    assert.throws(() => store.authorize(bearer(), ['client'], 'Generate'), isUnauthenticated(/missing API key/));
  });

  test('malformed headers and keys: UNAUTHENTICATED, without echoing what was sent', () => {
    const cases: [string | string[], RegExp][] = [
      [clientKey, /want "Bearer <key>"/], // no scheme
      [`Basic ${clientKey}`, /want "Bearer <key>"/],
      [`Bearer ${clientKey} extra`, /want "Bearer <key>"/],
      ['Bearer ', /want "Bearer <key>"/],
      ['Bearer sk-not-a-bora-key', /malformed API key/],
      [`Bearer ${clientKey}x`, /malformed API key/],
      [`Bearer ${clientKey.slice(0, -1)}!`, /malformed API key/],
      [[`Bearer ${clientKey}`, `Bearer ${adminKey}`], /more than one/],
    ];
    for (const [value, pattern] of cases) {
      assert.throws(() => store.authorize(bearer(value), ['client', 'admin'], 'Generate'), (e: unknown) => {
        assert.ok(isUnauthenticated(pattern)(e), `${JSON.stringify(value)}: ${String(e)}`);
        assert.ok(!(e as Error).message.includes('sk-not'), 'the message repeats the sent value');
        return true;
      });
    }
    const binary = new Metadata();
    binary.add('authorization-bin', Buffer.from('x'));
    assert.throws(() => bearerKey(binary), isUnauthenticated(/missing API key/));
  });

  test('a well-formed but unknown key: UNAUTHENTICATED', () => {
    assert.throws(() => store.authorize(bearer(`Bearer ${generateApiKey()}`), ['client'], 'Generate'), isUnauthenticated(/unknown API key/));
    assert.throws(() => new ApiKeyStore([]).verify(clientKey), isUnauthenticated(/unknown API key/));
  });

  test('a known key with the wrong role: PERMISSION_DENIED', () => {
    assert.throws(
      () => store.authorize(bearer(`Bearer ${clientKey}`), ['admin'], 'Drain'),
      (e: unknown) => e instanceof PermissionDeniedError && e.code === 'PERMISSION_DENIED' && /Drain is not allowed for API key app/.test(e.message),
    );
  });

  test('the store refuses bad records, duplicate names and duplicate hashes', () => {
    const h = hashApiKey(clientKey);
    assert.throws(() => new ApiKeyStore([{ name: 'a', role: 'root' as 'admin', sha256: h, createdAtMs: 0 }]), /role must be one of/);
    assert.throws(() => new ApiKeyStore([{ name: 'a', role: 'client', sha256: 'ABC', createdAtMs: 0 }]), /sha256/);
    assert.throws(() => new ApiKeyStore([{ name: 'a b', role: 'client', sha256: h, createdAtMs: 0 }]), /name must match/);
    assert.throws(() => new ApiKeyStore([{ name: 'a', role: 'client', sha256: h, createdAtMs: 0 }, { name: 'a', role: 'client', sha256: hashApiKey(adminKey), createdAtMs: 0 }]), /appears twice/);
    assert.throws(() => new ApiKeyStore([{ name: 'a', role: 'client', sha256: h, createdAtMs: 0 }, { name: 'b', role: 'client', sha256: h, createdAtMs: 0 }]), /same hash/);
  });
});

describe('API keys file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bora-keys-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('addApiKey stores only the hash (mode 0600) and the returned key verifies', () => {
    const path = join(dir, 'api-keys.json');
    const first = addApiKey(path, 'client');
    const second = addApiKey(path, 'admin', 'ops');
    const third = addApiKey(path, 'client');
    assert.deepEqual([first.record.name, second.record.name, third.record.name], ['client-1', 'ops', 'client-2']);
    const text = readFileSync(path, 'utf8');
    for (const { key } of [first, second, third]) assert.ok(!text.includes(key), 'the key itself is in the file');
    assert.equal(statSync(path).mode & 0o777, 0o600);
    const loaded = loadApiKeyStore(path);
    assert.deepEqual(loaded.verify(second.key), { name: 'ops', role: 'admin' });
    assert.deepEqual(loaded.verify(third.key), { name: 'client-2', role: 'client' });
    assert.throws(() => addApiKey(path, 'client', 'ops'), /already has a key named ops/);
    assert.equal(readApiKeysFile(path).length, 3);
  });

  test('a missing file is an empty store; a malformed one is refused', () => {
    assert.equal(loadApiKeyStore(join(dir, 'none.json')).size(), 0);
    assert.throws(() => parseApiKeysFile('{', 'f'), /not JSON/);
    assert.throws(() => parseApiKeysFile('{"version":2,"keys":[]}', 'f'), /want \{"version": 1/);
    assert.throws(() => parseApiKeysFile('{"version":1,"keys":[{"name":"a","role":"client","sha256":"00","createdAtMs":0}]}', 'f'), /keys\[0\] a: sha256/);
    const extra = join(dir, 'extra.json');
    writeFileSync(extra, JSON.stringify({ version: 1, keys: [{ name: 'a', role: 'client', sha256: hashApiKey(clientKey), createdAtMs: 0, key: clientKey }] }));
    assert.throws(() => loadApiKeyStore(extra), (e: unknown) => e instanceof BoraError && /unknown fields: key/.test(e.message));
  });
});
