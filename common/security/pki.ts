/**
 * The cluster's public-key infrastructure: one CA, and certificates for nodes, admins and clients
 * whose identity (role and id) is written into the certificate (see identity.ts).
 *
 * Certificates are built with @peculiar/x509 over Node's WebCrypto, with ECDSA P-256 keys: key
 * generation and signing are native and take milliseconds, keys and certificates are small, and
 * every TLS stack Bora talks to (Node, etcd's Go) accepts them. node-forge was the alternative; it
 * signs only with RSA in pure JavaScript. @peculiar/x509 needs the reflect-metadata polyfill,
 * loaded once below. Parsing and chain checks use Node's own crypto.X509Certificate.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { X509Certificate, createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import { InvalidArgumentError, UnauthenticatedError } from '../errors';
import {
  type Identity,
  formatIdentity,
  identity as checkedIdentity,
  identityCommonName,
  identityUri,
  parseIdentityCommonName,
  parseIdentityUri,
  sameIdentity,
} from './identity';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;
/** Certificates start this far in the past, so a peer whose clock runs a little behind accepts them. */
const BACKDATE_MS = 5 * 60_000;

export const DEFAULT_CA_VALIDITY_DAYS = 3650;
export const DEFAULT_CERT_VALIDITY_DAYS = 365;
export const DEFAULT_DNS_NAMES: readonly string[] = ['localhost'];
export const DEFAULT_IP_ADDRESSES: readonly string[] = ['127.0.0.1'];

/** A certificate and its private key, both PEM (the key as PKCS#8). */
export interface PemPair {
  readonly certPem: string;
  readonly keyPem: string;
}

export interface CaOptions {
  readonly commonName?: string;
  readonly validityDays?: number;
  readonly nowMs?: number;
}

export interface IssueOptions {
  readonly role: string;
  readonly id: string;
  /** DNS names the holder serves under (TLS hostname checks); default ["localhost"]. */
  readonly dnsNames?: readonly string[];
  /** IP addresses the holder serves under; default ["127.0.0.1"]. */
  readonly ipAddresses?: readonly string[];
  readonly validityDays?: number;
  readonly nowMs?: number;
}

/** A positive serial of 127 random bits (RFC 5280 wants <= 20 octets and unpredictable). */
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] & 0x7f) | 0x01; // positive and never a leading zero octet
  return bytes.toString('hex');
}

function validityDays(days: number | undefined, fallback: number): number {
  const value = days ?? fallback;
  if (!Number.isSafeInteger(value) || value < 1) throw new InvalidArgumentError(`validityDays must be a positive integer, got ${value}`);
  return value;
}

async function exportKeyPem(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key as webcrypto.CryptoKey);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

async function generateKeys(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify'])) as unknown as CryptoKeyPair;
}

/** Creates a self-signed cluster CA that may sign end-entity certificates only (path length 0). */
export async function createCa(options: CaOptions = {}): Promise<PemPair> {
  const nowMs = options.nowMs ?? Date.now();
  const days = validityDays(options.validityDays, DEFAULT_CA_VALIDITY_DAYS);
  const commonName = options.commonName ?? 'Bora cluster CA';
  if (/[,=+<>#;\\"]/.test(commonName)) throw new InvalidArgumentError(`CA common name must not contain DN syntax, got ${JSON.stringify(commonName)}`);
  const keys = await generateKeys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: `CN=${commonName}, O=bora`,
    notBefore: new Date(nowMs - BACKDATE_MS),
    notAfter: new Date(nowMs + days * DAY_MS),
    keys,
    signingAlgorithm: SIGNING_ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await exportKeyPem(keys.privateKey) };
}

function checkDnsName(name: string): string {
  if (!/^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(name) || name.length > 253) {
    throw new InvalidArgumentError(`not a DNS name: ${JSON.stringify(name)}`);
  }
  return name;
}

function checkIp(address: string): string {
  if (isIP(address) === 0) throw new InvalidArgumentError(`not an IP address: ${JSON.stringify(address)}`);
  return address;
}

/**
 * Issues a certificate for `role`/`id`, signed by `ca`. It is valid for both TLS server and client
 * authentication, since nodes both serve and dial each other.
 */
export async function issueCertificate(ca: PemPair, options: IssueOptions): Promise<PemPair> {
  const who = checkedIdentity(options.role, options.id);
  const nowMs = options.nowMs ?? Date.now();
  const days = validityDays(options.validityDays, DEFAULT_CERT_VALIDITY_DAYS);
  const dnsNames = (options.dnsNames ?? DEFAULT_DNS_NAMES).map(checkDnsName);
  const ipAddresses = (options.ipAddresses ?? DEFAULT_IP_ADDRESSES).map(checkIp);
  const caCert = new x509.X509Certificate(ca.certPem);
  const caKey = await webcrypto.subtle.importKey(
    'pkcs8',
    createPrivateKey(ca.keyPem).export({ type: 'pkcs8', format: 'der' }),
    { ...KEY_ALGORITHM },
    false,
    ['sign'],
  );
  const keys = await generateKeys();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: `CN=${identityCommonName(who)}, O=bora`,
    issuer: caCert.subject,
    notBefore: new Date(nowMs - BACKDATE_MS),
    notAfter: new Date(nowMs + days * DAY_MS),
    publicKey: keys.publicKey,
    signingKey: caKey as unknown as CryptoKey,
    signingAlgorithm: SIGNING_ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension([
        { type: 'url', value: identityUri(who) },
        ...dnsNames.map((value) => ({ type: 'dns' as const, value })),
        ...ipAddresses.map((value) => ({ type: 'ip' as const, value })),
      ]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await exportKeyPem(keys.privateKey) };
}

function commonNameOf(cert: X509Certificate): string | undefined {
  const line = cert.subject.split('\n').find((l) => l.startsWith('CN='));
  return line?.slice(3);
}

/** `URI:a, DNS:b` -> the values of the URI entries. Node quotes entries holding special characters;
 * those cannot be Bora identity URIs, which are drawn from a plain alphabet, so they are skipped. */
function sanUris(cert: X509Certificate): string[] {
  const san = cert.subjectAltName;
  if (san === undefined) return [];
  return san
    .split(', ')
    .filter((entry) => entry.startsWith('URI:'))
    .map((entry) => entry.slice(4));
}

/**
 * The identity a certificate carries. Refuses (UnauthenticatedError) a certificate without exactly
 * one Bora identity URI, or whose CN disagrees with it: etcd authorizes by the CN, Bora by the
 * URI, and the two must name the same principal.
 */
export function certificateIdentity(cert: X509Certificate | string | Buffer): Identity {
  const parsed = cert instanceof X509Certificate ? cert : new X509Certificate(cert);
  const identities = sanUris(parsed)
    .map(parseIdentityUri)
    .filter((who): who is Identity => who !== undefined);
  if (identities.length !== 1) {
    throw new UnauthenticatedError(`certificate ${parsed.serialNumber} carries ${identities.length} Bora identities (want exactly one bora://ROLE/ID URI)`);
  }
  const [who] = identities;
  const cn = commonNameOf(parsed);
  const fromCn = cn === undefined ? undefined : parseIdentityCommonName(cn);
  if (fromCn === undefined || !sameIdentity(fromCn, who)) {
    throw new UnauthenticatedError(`certificate ${parsed.serialNumber}: CN ${JSON.stringify(cn)} does not match its identity ${formatIdentity(who)}`);
  }
  return who;
}

/**
 * Checks that `certPem` was signed by the CA in `caPem` and is valid at `nowMs`, and returns its
 * identity. Every failure is an UnauthenticatedError: TLS does the same checks on live
 * connections; this is for certificates met outside TLS (files, the CLI, tests).
 */
export function verifyCertificate(certPem: string | Buffer, caPem: string | Buffer, nowMs: number = Date.now()): Identity {
  const cert = new X509Certificate(certPem);
  const ca = new X509Certificate(caPem);
  if (!ca.ca) throw new UnauthenticatedError(`${ca.subject.replace(/\n/g, ', ')} is not a CA certificate`);
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) {
    throw new UnauthenticatedError(`certificate ${cert.serialNumber} was not issued by the cluster CA`);
  }
  if (nowMs < Date.parse(cert.validFrom) || nowMs > Date.parse(cert.validTo)) {
    throw new UnauthenticatedError(`certificate ${cert.serialNumber} is valid from ${cert.validFrom} to ${cert.validTo}, not now`);
  }
  return certificateIdentity(cert);
}
