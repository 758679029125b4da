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

export function intFlag(value: string | undefined, flag: string, fallback?: number): number {
  if (value === undefined) {
    if (fallback === undefined) throw new InvalidArgumentError(`${flag} is required`);
    return fallback;
  }
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new InvalidArgumentError(`${flag} must be an integer, got "${value}"`);
  return n;
}

export function floatFlag(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n)) throw new InvalidArgumentError(`${flag} must be a number, got "${value}"`);
  return n;
}

/** "1,415,5565" -> [1, 415, 5565] */
export function idListFlag(value: string, flag: string): number[] {
  const ids = value.split(',').map((s) => s.trim()).filter((s) => s !== '').map(Number);
  if (ids.length === 0 || !ids.every((n) => Number.isSafeInteger(n) && n >= 0)) {
    throw new InvalidArgumentError(`${flag} must be a comma-separated list of token ids, got "${value}"`);
  }
  return ids;
}
