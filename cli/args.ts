/** Flag parsing shared by the bora subcommands: strict (unknown flags are errors), typed values. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { InvalidArgumentError } from '../common/errors';

export type Options = NonNullable<ParseArgsConfig['options']>;

export function parseFlags<O extends Options>(argv: string[], options: O, allowPositionals = false) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals });
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message, { cause: err });
  }
}

export function requireString(value: string | undefined, flag: string): string {
  if (value === undefined || value === '') throw new InvalidArgumentError(`${flag} is required`);
  return value;
}

/** The closed range a flag's integer must lie in. */
export interface IntRange {
  readonly min: number;
  readonly max: number;
}

/** No flag takes a negative number; the default upper bound is the largest exact integer. */
export const NON_NEGATIVE: IntRange = { min: 0, max: Number.MAX_SAFE_INTEGER };
/** A flag sent as a proto uint32 field, whose encoder would wrap a larger value (2^32 + 1 -> 1). */
export const UINT32: IntRange = { min: 0, max: 0xffff_ffff };

/**
 * A decimal integer flag in `range` (inclusive). Only digits are accepted: Number() would also
 * take "", "0x10", "1e3" and " 7 ", and a silently reinterpreted flag is worse than an error.
 */
export function intFlag(value: string | undefined, flag: string, fallback?: number, range: IntRange = NON_NEGATIVE): number {
  if (value === undefined) {
    if (fallback === undefined) throw new InvalidArgumentError(`${flag} is required`);
    return fallback;
  }
  const n = /^-?[0-9]+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < range.min || n > range.max) {
    throw new InvalidArgumentError(`${flag} must be an integer in [${range.min}, ${range.max}], got "${value}"`);
  }
  return n;
}

export function floatFlag(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = value.trim() === '' ? NaN : Number(value);
  if (!Number.isFinite(n)) throw new InvalidArgumentError(`${flag} must be a number, got "${value}"`);
  return n;
}

/** "1,415,5565" -> [1, 415, 5565] */
export function idListFlag(value: string, flag: string): number[] {
  const parts = value.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const ids = parts.map((s) => (/^[0-9]+$/.test(s) ? Number(s) : NaN));
  // Token ids travel as uint32: a larger one would wrap on the wire.
  if (ids.length === 0 || !ids.every((n) => Number.isSafeInteger(n) && n <= UINT32.max)) {
    throw new InvalidArgumentError(`${flag} must be a comma-separated list of token ids, got "${value}"`);
  }
  return ids;
}
