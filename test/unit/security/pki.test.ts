/**
 * The cluster PKI: a CA, certificates whose identity (SAN URI and CN) parses back, chain checks,
 * and the files with their modes. Every refusal has a case here.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey, webcrypto } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { BoraError, UnauthenticatedError } from '../../../common/errors';
import {
  identity,
  identityCommonName,
  identityUri,
  parseIdentityCommonName,
  parseIdentityUri,
} from '../../../common/security/identity';
import { type PemPair, certificateIdentity, createCa, issueCertificate, verifyCertificate } from '../../../common/security/pki';
import { certFiles, readCaFiles, writeCaFiles, writeIssuedFiles } from '../../../common/security/pki-files';

/** A CA-signed certificate with any subject and SANs, for the malformed cases pki.ts never issues. */
async function rawCert(ca: PemPair, subject: string, names: x509.JsonGeneralName[]): Promise<string> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as unknown as CryptoKeyPair;
  const caKey = await webcrypto.subtle.importKey('pkcs8', createPrivateKey(ca.keyPem).export({ type: 'pkcs8', format: 'der' }), alg, false, ['sign']);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: '0badc0de',
    subject,
    issuer: new x509.X509Certificate(ca.certPem).subject,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 86_400_000),
    publicKey: keys.publicKey,
    signingKey: caKey as unknown as CryptoKey,
    signingAlgorithm: alg,
    extensions: [new x509.SubjectAlternativeNameExtension(names)],
  });
  return cert.toString('pem');
}

describe('identity', () => {
  test('URI and CN forms round-trip, ids with dashes included', () => {
    for (const who of [identity('worker', 'w1'), identity('coordinator', 'c-1.a:b'), identity('admin', 'ops'), identity('client', 'x')]) {
      assert.deepEqual(parseIdentityUri(identityUri(who)), who);
      assert.deepEqual(parseIdentityCommonName(identityCommonName(who)), who);
    }
    assert.equal(identityUri(identity('worker', 'w1')), 'bora://worker/w1');
    assert.equal(identityCommonName(identity('worker', 'w1')), 'worker-w1');
  });

  test('refuses unknown roles, bad ids and foreign forms', () => {
    assert.throws(() => identity('root', 'x'), /role must be one of/);
    assert.throws(() => identity('worker', 'a/b'), /must match/);
    assert.throws(() => identity('worker', ''), /must match/);
    for (const uri of ['https://worker/w1', 'bora://worker', 'bora://root/x', 'bora://worker/a/b', 'bora://worker/']) {
      assert.equal(parseIdentityUri(uri), undefined, uri);
    }
    for (const cn of ['worker', 'root-x', 'worker-', 'Bora cluster CA']) assert.equal(parseIdentityCommonName(cn), undefined, cn);
  });
});

describe('pki', () => {
  const dirs: string[] = [];
  after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  test('a CA issues a certificate whose identity, CN and SANs parse back and which chains to it', async () => {
    const ca = await createCa();
    const caCert = new X509Certificate(ca.certPem);
    assert.equal(caCert.ca, true);
    const issued = await issueCertificate(ca, { role: 'worker', id: 'w1', dnsNames: ['localhost', 'w1.bora.internal'], ipAddresses: ['127.0.0.1', '::1'] });
    const cert = new X509Certificate(issued.certPem);
    assert.equal(cert.ca, false);
    assert.match(cert.subject, /^CN=worker-w1$/m);
    assert.match(cert.subjectAltName ?? '', /URI:bora:\/\/worker\/w1/);
    assert.match(cert.subjectAltName ?? '', /DNS:w1\.bora\.internal/);
    assert.match(cert.subjectAltName ?? '', /IP Address:127\.0\.0\.1/);
    assert.ok(cert.checkPrivateKey(createPrivateKey(issued.keyPem)));
    assert.equal(cert.checkHost('localhost'), 'localhost');
    assert.equal(cert.checkIP('127.0.0.1'), '127.0.0.1');
    assert.deepEqual(certificateIdentity(issued.certPem), { role: 'worker', id: 'w1' });
    assert.deepEqual(verifyCertificate(issued.certPem, ca.certPem), { role: 'worker', id: 'w1' });
  });

  test('defaults to localhost and 127.0.0.1', async () => {
    const ca = await createCa();
    const cert = new X509Certificate((await issueCertificate(ca, { role: 'coordinator', id: 'c1' })).certPem);
    assert.equal(cert.checkHost('localhost'), 'localhost');
    assert.equal(cert.checkIP('127.0.0.1'), '127.0.0.1');
  });

  test('refuses a certificate from another CA', async () => {
    const ca = await createCa();
    const other = await createCa();
    const foreign = await issueCertificate(other, { role: 'worker', id: 'w1' });
    assert.throws(() => verifyCertificate(foreign.certPem, ca.certPem), (e: unknown) => e instanceof UnauthenticatedError && /not issued by the cluster CA/.test(e.message));
  });

  test('refuses a certificate outside its validity window', async () => {
    const ca = await createCa();
    const issued = await issueCertificate(ca, { role: 'worker', id: 'w1', validityDays: 1 });
    assert.throws(() => verifyCertificate(issued.certPem, ca.certPem, Date.now() + 2 * 86_400_000), /valid from/);
    assert.throws(() => verifyCertificate(issued.certPem, ca.certPem, Date.now() - 86_400_000), /valid from/);
  });

  test('refuses a non-CA certificate as the CA', async () => {
    const ca = await createCa();
    const issued = await issueCertificate(ca, { role: 'worker', id: 'w1' });
    assert.throws(() => verifyCertificate(issued.certPem, issued.certPem), /not a CA certificate/);
  });

  test('refuses certificates with no, two, or a CN-mismatched identity', async () => {
    const ca = await createCa();
    const none = await rawCert(ca, 'CN=worker-w1', [{ type: 'dns', value: 'localhost' }]);
    const two = await rawCert(ca, 'CN=worker-w1', [{ type: 'url', value: 'bora://worker/w1' }, { type: 'url', value: 'bora://admin/w1' }]);
    const mismatch = await rawCert(ca, 'CN=admin-w1', [{ type: 'url', value: 'bora://worker/w1' }]);
    const noCn = await rawCert(ca, 'O=bora', [{ type: 'url', value: 'bora://worker/w1' }]);
    assert.throws(() => verifyCertificate(none, ca.certPem), (e: unknown) => e instanceof UnauthenticatedError && /0 Bora identities/.test(e.message));
    assert.throws(() => verifyCertificate(two, ca.certPem), /2 Bora identities/);
    assert.throws(() => verifyCertificate(mismatch, ca.certPem), /does not match its identity worker\/w1/);
    assert.throws(() => verifyCertificate(noCn, ca.certPem), /does not match/);
    // The well-formed twin passes, so the cases above fail for the reason they name.
    assert.deepEqual(verifyCertificate(await rawCert(ca, 'CN=worker-w1', [{ type: 'url', value: 'bora://worker/w1' }]), ca.certPem), { role: 'worker', id: 'w1' });
  });

  test('refuses bad roles, ids, names and addresses when issuing', async () => {
    const ca = await createCa();
    await assert.rejects(issueCertificate(ca, { role: 'root', id: 'x' }), /role must be one of/);
    await assert.rejects(issueCertificate(ca, { role: 'worker', id: 'a b' }), /must match/);
    await assert.rejects(issueCertificate(ca, { role: 'worker', id: 'w1', dnsNames: ['bad name'] }), /not a DNS name/);
    await assert.rejects(issueCertificate(ca, { role: 'worker', id: 'w1', ipAddresses: ['300.1.1.1'] }), /not an IP address/);
    await assert.rejects(issueCertificate(ca, { role: 'worker', id: 'w1', validityDays: 0 }), /validityDays/);
    await assert.rejects(createCa({ commonName: 'x, O=evil' }), /DN syntax/);
  });

  test('files: keys are 0600, the CA is never replaced, a reissue replaces the node files', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bora-pki-'));
    dirs.push(dir);
    const ca = await createCa();
    writeCaFiles(dir, ca);
    assert.throws(() => writeCaFiles(dir, ca), (e: unknown) => e instanceof BoraError && e.code === 'INVALID_ARGUMENT');
    assert.equal(statSync(join(dir, 'ca-key.pem')).mode & 0o777, 0o600);
    assert.deepEqual(readCaFiles(dir), ca);
    const first = writeIssuedFiles(dir, 'worker-w1', await issueCertificate(ca, { role: 'worker', id: 'w1' }));
    assert.deepEqual(first, certFiles(dir, 'worker-w1'));
    assert.equal(statSync(first.key).mode & 0o777, 0o600);
    assert.equal(statSync(first.cert).mode & 0o777, 0o644);
    const second = await issueCertificate(ca, { role: 'worker', id: 'w1' });
    writeIssuedFiles(dir, 'worker-w1', second);
    assert.equal(readFileSync(first.cert, 'utf8'), second.certPem);
    assert.throws(() => certFiles(dir, '../evil'), /plain name/);
    assert.throws(() => certFiles(dir, 'ca'), /plain name/);
    assert.throws(() => readCaFiles(join(dir, 'missing')), /no CA in/);
  });
});
