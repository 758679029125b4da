/**
 * The numeric ranges the wire can carry, checked on both sides instead of letting the encoder
 * wrap or round: protobufjs writes a uint32 field as `value >>> 0` (2^32 + 1 arrives as 1), and
 * the loader hands uint64 fields over as JavaScript numbers (proto.ts, `longs: Number`), which
 * round above 2^53 - 1. A value outside its field's range is an InvalidArgumentError naming the
 * field, the value and the range.
 */
import { InvalidArgumentError } from '../errors';

/** The largest value of a proto uint32 field. */
export const UINT32_MAX = 0xffff_ffff;

/**
 * The largest uint64 value carried exactly: above it the receiving side's number may already be
 * rounded, so a larger seed is refused rather than silently replaced by a neighbour.
 */
export const UINT64_EXACT_MAX = Number.MAX_SAFE_INTEGER;

/** `value` as an integer in [min, max], or an InvalidArgumentError naming `field`. */
export function checkInteger(value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError(`${field} must be an integer in [${min}, ${max}], got ${String(value)}`);
  }
  return value;
}

/** A uint32 field's value, refused above 2^32 - 1 (which the encoder would wrap). */
export function checkUint32(value: unknown, field: string, min = 0): number {
  return checkInteger(value, field, min, UINT32_MAX);
}

/** A uint64 field's value as a number, refused where it cannot be carried exactly. */
export function checkUint64Exact(value: unknown, field: string): number {
  const n = typeof value === 'bigint' && value <= BigInt(UINT64_EXACT_MAX) && value >= 0n ? Number(value) : value;
  return checkInteger(n, field, 0, UINT64_EXACT_MAX);
}
