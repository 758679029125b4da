/**
 * bora pki: the cluster's certificates and API keys, for deployments across machines.
 *
 *   bora pki init --dir D                       a new CA in D (ca.pem, ca-key.pem 0600)
 *   bora pki issue --dir D --role R --id ID     D/<R>-<ID>.pem and -key.pem, signed by D's CA
 *        [--dns NAME]... [--ip ADDR]... [--name FILE_NAME] [--days N]
 *   bora pki api-key --dir D --role client|admin [--name NAME]
 *                                              prints a new key once; D/api-keys.json keeps its hash
 *
 * Output: one JSON line on stdout naming what was written (and the key, for api-key); bad input
 * exits with status 2 (bora.ts).
 */
import { join } from 'node:path';
import { InvalidArgumentError } from '../common/errors';
import { isApiKeyRole } from '../common/security/api-keys';
import { API_KEYS_FILE, addApiKey } from '../common/security/api-keys-file';
import { identity, identityCommonName } from '../common/security/identity';
import { DEFAULT_CERT_VALIDITY_DAYS, createCa, issueCertificate } from '../common/security/pki';
import { readCaFiles, writeCaFiles, writeIssuedFiles } from '../common/security/pki-files';
import { intFlag, parseFlags, requireString } from './args';

const INIT_FLAGS = { dir: { type: 'string' }, days: { type: 'string' } } as const;
const ISSUE_FLAGS = {
  dir: { type: 'string' },
  role: { type: 'string' },
  id: { type: 'string' },
  dns: { type: 'string', multiple: true },
  ip: { type: 'string', multiple: true },
  name: { type: 'string' },
  days: { type: 'string' },
} as const;
const API_KEY_FLAGS = { dir: { type: 'string' }, role: { type: 'string' }, name: { type: 'string' } } as const;

const USAGE = 'usage: bora pki init --dir D | issue --dir D --role ROLE --id ID [--dns NAME]... [--ip ADDR]... | api-key --dir D --role client|admin [--name NAME]';

function print(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

async function init(argv: string[]): Promise<void> {
  const { values: v } = parseFlags(argv, INIT_FLAGS);
  const dir = requireString(v.dir, '--dir');
  const ca = await createCa({ validityDays: v.days === undefined ? undefined : intFlag(v.days, '--days') });
  writeCaFiles(dir, ca);
  print({ ca: join(dir, 'ca.pem') });
}

async function issue(argv: string[]): Promise<void> {
  const { values: v } = parseFlags(argv, ISSUE_FLAGS);
  const dir = requireString(v.dir, '--dir');
  const who = identity(requireString(v.role, '--role'), requireString(v.id, '--id'));
  const ca = readCaFiles(dir);
  const pair = await issueCertificate(ca, {
    role: who.role,
    id: who.id,
    dnsNames: v.dns,
    ipAddresses: v.ip,
    validityDays: v.days === undefined ? DEFAULT_CERT_VALIDITY_DAYS : intFlag(v.days, '--days'),
  });
  const files = writeIssuedFiles(dir, v.name ?? identityCommonName(who), pair);
  print({ role: who.role, id: who.id, ...files });
}

async function apiKey(argv: string[]): Promise<void> {
  const { values: v } = parseFlags(argv, API_KEY_FLAGS);
  const dir = requireString(v.dir, '--dir');
  const role = requireString(v.role, '--role');
  if (!isApiKeyRole(role)) throw new InvalidArgumentError(`--role must be client or admin, got "${role}"`);
  const path = join(dir, API_KEYS_FILE);
  const { key, record } = addApiKey(path, role, v.name);
  print({ name: record.name, role: record.role, key, file: path });
  process.stderr.write('this key is shown once: only its hash is stored\n');
}

const SUBCOMMANDS: Record<string, (argv: string[]) => Promise<void>> = { init, issue, 'api-key': apiKey };

export async function pkiCommand(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  const run = name === undefined ? undefined : SUBCOMMANDS[name];
  if (run === undefined) throw new InvalidArgumentError(name === undefined ? USAGE : `unknown pki command "${name}"\n${USAGE}`);
  await run(rest);
}
