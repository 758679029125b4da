/**
 * API keys for the client API, sent as gRPC metadata `authorization: Bearer KEY`.
 *
 * A key is `bora_` followed by 32 random bytes in base64url (256 bits). Only its SHA-256 is stored.
 * A fast unsalted hash is the right tool here, unlike for passwords: a key is uniformly random with
 * 256 bits of entropy, so there is no dictionary to try and nothing a salt or a slow KDF (bcrypt,
 * scrypt) would protect; a slow hash would only cost CPU on every request. The prefix lets secret
 * scanners recognise a leaked key.
 *
 * Verification hashes the presented key and compares it with every stored hash with
 * crypto.timingSafeEqual, without stopping early, so the time taken does not depend on which
 * stored key, if any, it matched.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { InvalidArgumentError, PermissionDeniedError, UnauthenticatedError } from '../errors';

export const API_KEY_PREFIX = 'bora_';
const SECRET_BYTES = 32;
/** `bora_` + 43 base64url characters (32 bytes without padding). */
const API_KEY_PATTERN = /^bora_[A-Za-z0-9_-]{43}$/;
const SHA256_HEX_PATTERN = /^[0-9a-f]{64}$/;
const NAME_PATTERN = /^[A-Za-z0-9._:-]{1,64}$/;
export const AUTHORIZATION_METADATA_KEY = 'authorization';

export const API_KEY_ROLES = ['client', 'admin'] as const;
export type ApiKeyRole = (typeof API_KEY_ROLES)[number];

/** What is stored per key: never the key itself. */
export interface ApiKeyRecord {
  /** Operator-chosen label, unique in a store; it is the principal's name in audit logs and limits. */
  readonly name: string;
  readonly role: ApiKeyRole;
  /** Lowercase hex SHA-256 of the whole key string, prefix included. */
  readonly sha256: string;
  readonly createdAtMs: number;
}

/** Who a verified key speaks for. */
export interface ApiKeyPrincipal {
  readonly name: string;
  readonly role: ApiKeyRole;
}

export function isApiKeyRole(raw: unknown): raw is ApiKeyRole {
  return typeof raw === 'string' && (API_KEY_ROLES as readonly string[]).includes(raw);
}

export function generateApiKey(): string {
  return `${API_KEY_PREFIX}${randomBytes(SECRET_BYTES).toString('base64url')}`;
}

export function hashApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

export function isWellFormedApiKey(key: string): boolean {
  return API_KEY_PATTERN.test(key);
}

/** Checks a record's fields; throws InvalidArgumentError naming the bad one. */
export function validateApiKeyRecord(raw: unknown, where = 'API key record'): ApiKeyRecord {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new InvalidArgumentError(`${where} must be an object`);
  const r = raw as Record<string, unknown>;
  const unknown = Object.keys(r).filter((k) => !['name', 'role', 'sha256', 'createdAtMs'].includes(k));
  if (unknown.length > 0) throw new InvalidArgumentError(`${where} has unknown fields: ${unknown.join(', ')}`);
  if (typeof r.name !== 'string' || !NAME_PATTERN.test(r.name)) throw new InvalidArgumentError(`${where}: name must match ${NAME_PATTERN.source}`);
  if (!isApiKeyRole(r.role)) throw new InvalidArgumentError(`${where} ${r.name}: role must be one of ${API_KEY_ROLES.join(', ')}`);
  if (typeof r.sha256 !== 'string' || !SHA256_HEX_PATTERN.test(r.sha256)) throw new InvalidArgumentError(`${where} ${r.name}: sha256 must be 64 lowercase hex digits`);
  if (typeof r.createdAtMs !== 'number' || !Number.isSafeInteger(r.createdAtMs) || r.createdAtMs < 0) {
    throw new InvalidArgumentError(`${where} ${r.name}: createdAtMs must be a non-negative integer`);
  }
  return { name: r.name, role: r.role, sha256: r.sha256, createdAtMs: r.createdAtMs };
}

/** The part of grpc-js Metadata this reads. */
export interface MetadataLike {
  get(key: string): (string | Buffer)[];
}

/**
 * The key in `authorization: Bearer KEY`. UnauthenticatedError when the header is missing,
 * repeated, or not a well-formed Bora bearer key. Messages never repeat what was sent: it may be a
 * secret meant for something else.
 */
export function bearerKey(metadata: MetadataLike): string {
  const values = metadata.get(AUTHORIZATION_METADATA_KEY);
  if (values.length === 0) throw new UnauthenticatedError('missing API key: send metadata "authorization: Bearer <key>"');
  if (values.length > 1) throw new UnauthenticatedError('more than one authorization header');
  const [value] = values;
  if (typeof value !== 'string') throw new UnauthenticatedError('malformed authorization header: not text');
  const match = /^Bearer ([^\s]+)$/i.exec(value.trim());
  if (match === null) throw new UnauthenticatedError('malformed authorization header: want "Bearer <key>"');
  if (!isWellFormedApiKey(match[1])) throw new UnauthenticatedError(`malformed API key: want ${API_KEY_PREFIX} followed by 43 base64url characters`);
  return match[1];
}

/** The keys one server accepts, by hash. */
export class ApiKeyStore {
  private readonly records: readonly { readonly record: ApiKeyRecord; readonly digest: Buffer }[];

  constructor(records: readonly ApiKeyRecord[]) {
    const names = new Set<string>();
    const hashes = new Set<string>();
    this.records = records.map((raw) => {
      const record = validateApiKeyRecord(raw);
      if (names.has(record.name)) throw new InvalidArgumentError(`API key name ${record.name} appears twice`);
      if (hashes.has(record.sha256)) throw new InvalidArgumentError(`API key ${record.name} has the same hash as another key`);
      names.add(record.name);
      hashes.add(record.sha256);
      return { record, digest: Buffer.from(record.sha256, 'hex') };
    });
  }

  size(): number {
    return this.records.length;
  }

  /** The principal of `key`; UnauthenticatedError when it is malformed or unknown. */
  verify(key: string): ApiKeyPrincipal {
    if (!isWellFormedApiKey(key)) throw new UnauthenticatedError(`malformed API key: want ${API_KEY_PREFIX} followed by 43 base64url characters`);
    const digest = createHash('sha256').update(key, 'utf8').digest();
    let found: ApiKeyRecord | undefined;
    for (const entry of this.records) {
      // No early exit: every stored digest is compared whatever matched before.
      if (timingSafeEqual(entry.digest, digest)) found = entry.record;
    }
    if (found === undefined) throw new UnauthenticatedError('unknown API key');
    return { name: found.name, role: found.role };
  }

  /**
   * The principal in the call's metadata when its role is in `allowedRoles`: UnauthenticatedError
   * for a missing, malformed or unknown key, PermissionDeniedError for a role not allowed `what`.
   */
  authorize(metadata: MetadataLike, allowedRoles: readonly ApiKeyRole[], what: string): ApiKeyPrincipal {
    const principal = this.verify(bearerKey(metadata));
    if (!allowedRoles.includes(principal.role)) {
      throw new PermissionDeniedError(`${what} is not allowed for API key ${principal.name} (role ${principal.role}; allowed: ${allowedRoles.join(', ')})`);
    }
    return principal;
  }
}
