/**
 * The external moderation hook (`--safety-url URL --safety-timeout-ms N --safety-fail open|closed`):
 * text is POSTed to a moderation service, in a shape close to OpenAI's /v1/moderations.
 *
 *   request   POST URL, content-type application/json
 *             { "input": "text to check",
 *               "metadata": { "request": "request id", "stage": "prompt" | "output" } }
 *   response  200, application/json
 *             { "results": [ { "flagged": true,
 *                              "categories": { "violence": true, "hate": false },
 *                              "category_scores": { "violence": 0.93 } } ] }
 *
 * Text is flagged when any result says `flagged: true`; the incident names the flagged categories.
 * The call has a deadline; a timeout, a refused connection, a non-2xx status or a body not of
 * this shape is a failure of the service, and `failMode` decides: `open` lets the text through,
 * `closed` blocks it. Either way the failure is reported (metric and audit line).
 */
import { UnavailableError } from '../../common/errors';
import type { SafetyStage } from './rules';

export type FailMode = 'open' | 'closed';

export interface ModerationOptions {
  readonly url: string;
  readonly timeoutMs: number;
  readonly failMode: FailMode;
}

export const DEFAULT_MODERATION_TIMEOUT_MS = 2_000;

export interface ModerationRequestBody {
  readonly input: string;
  readonly metadata: { readonly request: string; readonly stage: SafetyStage };
}

export interface ModerationResult {
  readonly flagged: boolean;
  readonly categories?: Readonly<Record<string, boolean>>;
  readonly category_scores?: Readonly<Record<string, number>>;
}

export interface ModerationResponseBody {
  readonly results: readonly ModerationResult[];
}

/** What the hook decided about one text. */
export type ModerationVerdict =
  | { readonly kind: 'allowed' }
  | { readonly kind: 'flagged'; readonly categories: readonly string[] }
  /** The service failed; `allowed` is what failMode made of it. */
  | { readonly kind: 'failed'; readonly allowed: boolean; readonly reason: string };

function parseResponse(body: unknown): ModerationResponseBody {
  const results = (body as { results?: unknown } | null)?.results;
  if (!Array.isArray(results) || results.length === 0 || !results.every((r) => typeof (r as { flagged?: unknown } | null)?.flagged === 'boolean')) {
    throw new UnavailableError('the moderation reply has no "results" list of objects with a boolean "flagged"');
  }
  return body as ModerationResponseBody;
}

export class ModerationClient {
  constructor(private readonly options: ModerationOptions) {}

  get failMode(): FailMode {
    return this.options.failMode;
  }

  async check(input: string, request: string, stage: SafetyStage): Promise<ModerationVerdict> {
    let reply: ModerationResponseBody;
    try {
      const body: ModerationRequestBody = { input, metadata: { request, stage } };
      const res = await fetch(this.options.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
      if (!res.ok) throw new UnavailableError(`the moderation service answered HTTP ${res.status}`);
      reply = parseResponse(await res.json());
    } catch (err) {
      const reason =
        err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')
          ? `no answer within ${this.options.timeoutMs} ms`
          : err instanceof Error
            ? err.message
            : String(err);
      return { kind: 'failed', allowed: this.options.failMode === 'open', reason };
    }
    const flagged = reply.results.filter((r) => r.flagged);
    if (flagged.length === 0) return { kind: 'allowed' };
    const categories = [...new Set(flagged.flatMap((r) => Object.entries(r.categories ?? {}).filter(([, on]) => on === true).map(([name]) => name)))];
    return { kind: 'flagged', categories };
  }
}
