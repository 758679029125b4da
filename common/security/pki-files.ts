/**
 * The PKI directory layout: `ca.pem` and `ca-key.pem`, then `<name>.pem` and `<name>-key.pem` per
 * issued certificate (name defaults to the identity's CN, e.g. `worker-w1`). Private keys are
 * mode 0600. Every file is written to a temporary name and renamed into place, so a process that
 * reloads certificates (tls-credentials.ts) never reads a half-written file.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { InvalidArgumentError, NotFoundError } from '../errors';
import type { PemPair } from './pki';

export const CA_CERT_FILE = 'ca.pem';
export const CA_KEY_FILE = 'ca-key.pem';
const PRIVATE_MODE = 0o600;
const PUBLIC_MODE = 0o644;

export interface CertFiles {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

/** File names may not leave the directory or hide: a plain name only. */
function checkName(name: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$/.test(name) || name === CA_CERT_FILE.slice(0, -4)) {
    throw new InvalidArgumentError(`certificate file name ${JSON.stringify(name)} must be a plain name (not "ca")`);
  }
  return name;
}

export function certFiles(dir: string, name: string): CertFiles {
  checkName(name);
  return { ca: join(dir, CA_CERT_FILE), cert: join(dir, `${name}.pem`), key: join(dir, `${name}-key.pem`) };
}

/** Writes `text` to `path` atomically (temp file + rename) with `mode`. */
export function writeFileAtomic(path: string, text: string, mode: number): void {
  mkdirSync(dirname(path), { recursive: true });
  const temp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    writeFileSync(temp, text, { mode });
    chmodSync(temp, mode); // the umask may have narrowed or the file existed
    renameSync(temp, path);
  } catch (err) {
    rmSync(temp, { force: true });
    throw err;
  }
}

/** Writes ca.pem and ca-key.pem; refuses to replace an existing CA (that would orphan every issued certificate). */
export function writeCaFiles(dir: string, ca: PemPair): void {
  const certPath = join(dir, CA_CERT_FILE);
  if (existsSync(certPath)) throw new InvalidArgumentError(`${certPath} exists: refusing to replace the cluster CA`);
  writeFileAtomic(join(dir, CA_KEY_FILE), ca.keyPem, PRIVATE_MODE);
  writeFileAtomic(certPath, ca.certPem, PUBLIC_MODE);
}

export function readCaFiles(dir: string): PemPair {
  const certPath = join(dir, CA_CERT_FILE);
  const keyPath = join(dir, CA_KEY_FILE);
  if (!existsSync(certPath) || !existsSync(keyPath)) throw new NotFoundError(`no CA in ${dir} (want ${CA_CERT_FILE} and ${CA_KEY_FILE}; run \`bora pki init --dir ${dir}\`)`);
  return { certPem: readFileSync(certPath, 'utf8'), keyPem: readFileSync(keyPath, 'utf8') };
}

/** Writes `<name>-key.pem` then `<name>.pem` (replacing earlier ones: that is how a certificate is rotated). */
export function writeIssuedFiles(dir: string, name: string, pair: PemPair): CertFiles {
  const files = certFiles(dir, name);
  writeFileAtomic(files.key, pair.keyPem, PRIVATE_MODE);
  writeFileAtomic(files.cert, pair.certPem, PUBLIC_MODE);
  return files;
}
