/**
 * The keys file: JSON, `{"version": 1, "keys": [{"name", "role", "sha256", "createdAtMs"}, ...]}`,
 * mode 0600. It holds hashes only (api-keys.ts), so a leaked file does not leak keys; it is still
 * private because it lists who may call. Edited by `bora pki api-key`, read by the coordinator.
 */
import { existsSync, readFileSync } from 'node:fs';
import { InvalidArgumentError } from '../errors';
import { type ApiKeyRecord, type ApiKeyRole, ApiKeyStore, generateApiKey, hashApiKey, validateApiKeyRecord } from './api-keys';
import { writeFileAtomic } from './pki-files';

export const API_KEYS_FILE = 'api-keys.json';
const FORMAT_VERSION = 1;

export function parseApiKeysFile(text: string, where: string): ApiKeyRecord[] {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new InvalidArgumentError(`${where}: not JSON (${(err as Error).message})`, { cause: err });
  }
  const file = raw as { version?: unknown; keys?: unknown };
  if (typeof raw !== 'object' || raw === null || file.version !== FORMAT_VERSION || !Array.isArray(file.keys)) {
    throw new InvalidArgumentError(`${where}: want {"version": ${FORMAT_VERSION}, "keys": [...]}`);
  }
  return file.keys.map((k, i) => validateApiKeyRecord(k, `${where}: keys[${i}]`));
}

export function readApiKeysFile(path: string): ApiKeyRecord[] {
  if (!existsSync(path)) return [];
  return parseApiKeysFile(readFileSync(path, 'utf8'), path);
}

export function writeApiKeysFile(path: string, records: readonly ApiKeyRecord[]): void {
  new ApiKeyStore(records); // refuses duplicate names or hashes before anything is written
  writeFileAtomic(path, `${JSON.stringify({ version: FORMAT_VERSION, keys: records }, null, 2)}\n`, 0o600);
}

/** A store of the keys in `path` (none when it does not exist). */
export function loadApiKeyStore(path: string): ApiKeyStore {
  return new ApiKeyStore(readApiKeysFile(path));
}

/**
 * Generates a key for `role`, appends its hash to `path` under `name` (default `<role>-<n>`), and
 * returns the key: the only time it exists in clear.
 */
export function addApiKey(path: string, role: ApiKeyRole, name?: string, nowMs: number = Date.now()): { key: string; record: ApiKeyRecord } {
  const records = readApiKeysFile(path);
  let chosen = name;
  if (chosen === undefined) {
    const taken = new Set(records.map((r) => r.name));
    let n = 1;
    while (taken.has(`${role}-${n}`)) n += 1;
    chosen = `${role}-${n}`;
  }
  const key = generateApiKey();
  const record = validateApiKeyRecord({ name: chosen, role, sha256: hashApiKey(key), createdAtMs: nowMs });
  if (records.some((r) => r.name === record.name)) throw new InvalidArgumentError(`${path} already has a key named ${record.name}`);
  writeApiKeysFile(path, [...records, record]);
  return { key, record };
}
