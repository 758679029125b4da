/**
 * CertificateReloader: a valid rewrite takes effect and notifies listeners once; a half-done or
 * broken rewrite is refused and the previous set stays in force.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { CertificateReloader } from '../../../common/security/certificate-reloader';
import { issueCertificate } from '../../../common/security/pki';
import { writeIssuedFiles } from '../../../common/security/pki-files';
import { type TestPki, testPki } from '../../support/security';

describe('CertificateReloader', () => {
  let pki: TestPki;
  before(async () => {
    pki = await testPki();
  });
  after(() => pki?.remove());

  test('loads at construction and refuses unusable files up front', async () => {
    const files = await pki.issue('worker', 'w1');
    assert.deepEqual(new CertificateReloader(files).identity(), { role: 'worker', id: 'w1' });
    const other = await pki.issue('worker', 'w2');
    assert.throws(() => new CertificateReloader({ ...files, key: other.key }), /is not the key of/);
    assert.throws(() => new CertificateReloader({ ...files, cert: `${pki.dir}/missing.pem` }), /ENOENT/);
    assert.throws(() => new CertificateReloader(files, { refreshIntervalMs: 0 }), /refreshIntervalMs/);
  });

  test('a valid rewrite notifies identity listeners once; an unchanged file does not', async () => {
    const files = await pki.issue('worker', 'w3');
    const reloader = new CertificateReloader(files, { refreshIntervalMs: 60_000 });
    const seen: string[] = [];
    const listener = (update: { certificate: Buffer } | null): void => void seen.push(update === null ? 'null' : 'cert');
    reloader.addIdentityCertificateListener(listener);
    await new Promise((resolve) => process.nextTick(resolve));
    assert.deepEqual(seen, ['cert']); // the initial answer
    assert.equal(reloader.refresh(), false);
    writeIssuedFiles(pki.dir, 'worker-w3', await issueCertificate(pki.ca, { role: 'worker', id: 'w4' }));
    assert.equal(reloader.refresh(), true);
    assert.deepEqual(seen, ['cert', 'cert']);
    assert.deepEqual(reloader.identity(), { role: 'worker', id: 'w4' });
    reloader.removeIdentityCertificateListener(listener);
  });

  test('a torn rotation (new certificate, old key) or garbage keeps the previous set', async () => {
    const files = await pki.issue('worker', 'w5');
    const logs: string[] = [];
    const reloader = new CertificateReloader(files, { log: (m) => logs.push(m) });
    const before = reloader.pem();
    const next = await issueCertificate(pki.ca, { role: 'worker', id: 'w6' });
    writeFileSync(files.cert, next.certPem); // the key is not rewritten yet
    assert.equal(reloader.refresh(), false);
    assert.deepEqual(reloader.pem(), before);
    assert.match(logs.join('\n'), /is not the key of/);
    writeFileSync(files.cert, 'not a certificate');
    assert.equal(reloader.refresh(), false);
    assert.match(logs.join('\n'), /not a PEM certificate/);
    writeFileSync(files.key, next.keyPem); // the rotation completes
    writeFileSync(files.cert, next.certPem);
    assert.equal(reloader.refresh(), true);
    assert.equal(reloader.identity().id, 'w6');
  });
});
