/**
 * What every fuzz target checks, and how many cases it runs. In the suite each target runs a few
 * hundred cases (a few thousand in all, well under 30 s); `npm run fuzz` sets BORA_FUZZ_RUNS
 * (default 100000 there) for long campaigns, and BORA_FUZZ_SEED replays one.
 *
 * The property, for any input: the code returns, or throws a BoraError (a typed error the
 * transport maps to a status); never a TypeError, RangeError or other crash; never takes longer
 * than a per-case bound (a hang or an allocation sized by the input shows up as time).
 */
import assert from 'node:assert/strict';
import * as fc from 'fast-check';
import { BoraError } from '../../common/errors';

/** Cases per target: BORA_FUZZ_RUNS when set, else the suite's `suiteRuns`. */
export function fuzzRuns(suiteRuns: number): number {
  const env = process.env.BORA_FUZZ_RUNS;
  if (env === undefined || env === '') return suiteRuns;
  const n = Number(env);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`BORA_FUZZ_RUNS must be a positive integer, got "${env}"`);
  return n;
}

/** fast-check's parameters: the run count, a replayable seed, and the regression examples. */
export function fuzzParameters<T>(suiteRuns: number, examples: T[] = []): fc.Parameters<T> {
  const seed = process.env.BORA_FUZZ_SEED;
  return { numRuns: fuzzRuns(suiteRuns), examples, ...(seed !== undefined && seed !== '' ? { seed: Number(seed) } : {}) };
}

/**
 * Runs `work`; passes if it returns or throws a BoraError within `boundMs`. Returns what it
 * returned (undefined after a typed error) so the caller can check more.
 */
export function typedOrOk<T>(work: () => T, boundMs = 250): T | undefined {
  const start = performance.now();
  let result: T | undefined;
  try {
    result = work();
  } catch (err) {
    if (!(err instanceof BoraError)) {
      assert.fail(`untyped error ${(err as Error)?.constructor?.name}: ${(err as Error)?.message ?? String(err)}`);
    }
  }
  const ms = performance.now() - start;
  assert.ok(ms < boundMs, `one case took ${ms.toFixed(1)} ms (bound ${boundMs} ms)`);
  return result;
}
