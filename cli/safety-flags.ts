/**
 * The coordinator's safety filter from its command line (coordinator/safety/):
 *
 *   --safety-policy FILE       deny-list and regex rules (policy-file.ts); a bad file stops the
 *                              coordinator at start with an error naming it
 *   --safety-url URL           an external moderation service, asked about every prompt
 *   --safety-timeout-ms N      its deadline (default 2000)
 *   --safety-fail open|closed  what a timeout or error means: let the prompt through (open, the
 *                              default) or block it (closed)
 *
 * `bora up` passes the same flags through to its coordinator (safetyArgs).
 */
import { resolve } from 'node:path';
import { InvalidArgumentError } from '../common/errors';
import { DEFAULT_MODERATION_TIMEOUT_MS, type FailMode } from '../coordinator/safety/moderation-client';
import { loadPolicyFile } from '../coordinator/safety/policy-file';
import type { SafetyOptions } from '../coordinator/safety/safety-options';
import { intFlag } from './args';

export const SAFETY_FLAGS = {
  'safety-policy': { type: 'string' },
  'safety-url': { type: 'string' },
  'safety-timeout-ms': { type: 'string' },
  'safety-fail': { type: 'string' },
} as const;

type SafetyFlagValues = { readonly [K in keyof typeof SAFETY_FLAGS]?: string };

function failModeOf(value: string | undefined): FailMode {
  if (value === undefined || value === 'open' || value === 'closed') return value ?? 'open';
  throw new InvalidArgumentError(`--safety-fail must be open or closed, got "${value}"`);
}

function moderationUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidArgumentError(`--safety-url must be an http:// or https:// URL, got "${value}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new InvalidArgumentError(`--safety-url must be an http:// or https:// URL, got "${value}"`);
  return url.toString();
}

/** The filter the flags ask for; undefined when none is. Loads (and checks) the policy file. */
export function safetyFromFlags(v: SafetyFlagValues): SafetyOptions | undefined {
  const url = v['safety-url'];
  if (url === undefined && (v['safety-timeout-ms'] !== undefined || v['safety-fail'] !== undefined)) {
    throw new InvalidArgumentError('--safety-timeout-ms and --safety-fail need --safety-url');
  }
  if (v['safety-policy'] === undefined && url === undefined) return undefined;
  return {
    ...(v['safety-policy'] === undefined ? {} : { policy: loadPolicyFile(resolve(v['safety-policy'])) }),
    ...(url === undefined
      ? {}
      : {
          moderation: {
            url: moderationUrl(url),
            timeoutMs: intFlag(v['safety-timeout-ms'], '--safety-timeout-ms', DEFAULT_MODERATION_TIMEOUT_MS, { min: 1, max: 600_000 }),
            failMode: failModeOf(v['safety-fail']),
          },
        }),
  };
}

/** The flags as `bora up` hands them to its coordinator (the policy path made absolute). */
export function safetyArgs(v: SafetyFlagValues): string[] {
  const args: string[] = [];
  if (v['safety-policy'] !== undefined) args.push('--safety-policy', resolve(v['safety-policy']));
  for (const flag of ['safety-url', 'safety-timeout-ms', 'safety-fail'] as const) {
    const value = v[flag];
    if (value !== undefined) args.push(`--${flag}`, value);
  }
  return args;
}
