/**
 * Bora errors as OpenAI's error object and an HTTP status:
 *
 *     {"error": {"message": "...", "type": "invalid_request_error", "param": "max_tokens", "code": null}}
 *
 * The status follows the BoraError's code (INVALID_ARGUMENT 400, UNAUTHENTICATED 401,
 * PERMISSION_DENIED 403, NOT_FOUND 404, RESOURCE_EXHAUSTED 429 with `retry-after`, UNAVAILABLE
 * 503, ...); a body over the byte limit is 413. `param` names the request field at fault, when
 * one is: validation (request-fields.ts) records it with `withParam`.
 */
import { type BoraError, InvalidArgumentError, ResourceExhaustedError, asBoraError } from '../../common/errors';

export interface OpenAiErrorBody {
  readonly error: {
    readonly message: string;
    readonly type: string;
    readonly param: string | null;
    readonly code: string | null;
  };
}

export interface HttpError {
  readonly status: number;
  readonly body: OpenAiErrorBody;
  /** Extra response headers (`retry-after`). */
  readonly headers: Readonly<Record<string, string>>;
}

/** The request field an error is about. A WeakMap, so that errors stay the classes of common/errors.ts. */
const PARAMS = new WeakMap<BoraError, string>();

/** An InvalidArgumentError about the request field `param` (a dotted path: `messages.1.role`). */
export function fieldError(param: string, message: string): InvalidArgumentError {
  const err = new InvalidArgumentError(message);
  PARAMS.set(err, param);
  return err;
}


export function bodyTooLarge(limitBytes: number): HttpError {
  return {
    status: 413,
    body: {
      error: {
        message: `the request body is over ${limitBytes} bytes, the limit (derived from the coordinator's --max-prompt-bytes)`,
        type: 'invalid_request_error',
        param: null,
        code: 'request_too_large',
      },
    },
    headers: {},
  };
}

export function notFoundRoute(method: string, url: string): HttpError {
  return {
    status: 404,
    body: { error: { message: `no route ${method} ${url.split('?')[0]}; this server has POST /v1/chat/completions, POST /v1/completions and GET /v1/models`, type: 'invalid_request_error', param: null, code: 'unknown_url' } },
    headers: {},
  };
}

function statusOf(err: BoraError): { status: number; type: string; code: string | null } {
  switch (err.code) {
    case 'INVALID_ARGUMENT':
      return { status: 400, type: 'invalid_request_error', code: null };
    case 'UNAUTHENTICATED':
      return { status: 401, type: 'authentication_error', code: 'invalid_api_key' };
    case 'PERMISSION_DENIED':
      return { status: 403, type: 'permission_error', code: null };
    case 'NOT_FOUND':
      return { status: 404, type: 'invalid_request_error', code: 'model_not_found' };
    case 'RESOURCE_EXHAUSTED':
      return { status: 429, type: 'rate_limit_error', code: 'rate_limit_exceeded' };
    case 'UNAVAILABLE':
      return { status: 503, type: 'server_error', code: 'service_unavailable' };
    case 'DEADLINE_EXCEEDED':
      return { status: 504, type: 'server_error', code: 'timeout' };
    case 'CANCELLED':
      // The client went away: nobody reads this answer (nginx's "client closed request").
      return { status: 499, type: 'server_error', code: 'cancelled' };
    default:
      return { status: 500, type: 'server_error', code: null };
  }
}

export function httpErrorOf(raw: unknown): HttpError {
  const err = asBoraError(raw);
  const { status, type, code } = statusOf(err);
  const headers: Record<string, string> = {};
  if (err instanceof ResourceExhaustedError && err.retryAfterMs !== undefined) {
    headers['retry-after'] = String(Math.max(1, Math.ceil(err.retryAfterMs / 1000)));
    headers['retry-after-ms'] = String(Math.ceil(err.retryAfterMs));
  }
  if (status === 503) headers['retry-after'] = '1';
  // An internal error's message may describe internals; it is logged, the client gets a summary.
  const message = status === 500 ? 'internal error; see the coordinator log' : err.message;
  return { status, body: { error: { message, type, param: PARAMS.get(err) ?? null, code } }, headers };
}
