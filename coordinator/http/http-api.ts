/**
 * The OpenAI-compatible HTTP API, served by the coordinator beside its gRPC port
 * (`--http-listen HOST:PORT`), on fastify:
 *
 *   POST /v1/chat/completions, POST /v1/completions (completion-handler.ts), GET /v1/models,
 *   GET /v1/models/{id}.
 *
 * Every request is authenticated first, before its body is read: `Authorization: Bearer KEY`
 * against the cluster's API keys (the ClientGate the gRPC API uses), when it has keys. The body
 * is read up to a byte limit derived from --max-prompt-bytes (413 past it) and parsed as JSON
 * whatever its content type (curl's -d sends a form type). Every error leaves as OpenAI's error
 * object (openai-error.ts). With TLS (a secure cluster) the port serves HTTPS with the
 * coordinator's own certificate, and follows it when it is rotated.
 */
import type { IncomingMessage, Server } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { BoraError, InvalidArgumentError, NotFoundError } from '../../common/errors';
import type { ApiKeyPrincipal } from '../../common/security/api-keys';
import type { CertificateReloader } from '../../common/security/certificate-reloader';
import type { ClientMethod } from '../client-gate';
import { httpClientCall } from './client-call';
import { ROUTE_METHOD, type CompletionRoute, serveCompletion } from './completion-handler';
import type { HttpApiDeps, HttpEndpoint } from './http-deps';
import { bodyTooLarge, httpErrorOf, notFoundRoute, type HttpError } from './openai-error';

/**
 * The body limit for `maxPromptBytes` of prompt text: JSON may spell one byte of text as six
 * (`\u0001`), so any prompt the coordinator would accept fits, with 64 KiB for the other fields.
 */
export function httpBodyLimitBytes(maxPromptBytes: number): number {
  return 6 * maxPromptBytes + 64 * 1024;
}

export interface HttpApiOptions {
  readonly host: string;
  readonly port: number;
  /** HTTPS with this certificate (the coordinator's); plain HTTP when absent. */
  readonly tls?: CertificateReloader;
}

const ROUTES: Readonly<Record<string, { endpoint: HttpEndpoint; method: ClientMethod }>> = {
  '/v1/chat/completions': { endpoint: 'chat_completions', method: ROUTE_METHOD.chat },
  '/v1/completions': { endpoint: 'completions', method: ROUTE_METHOD.text },
  '/v1/models': { endpoint: 'models', method: 'Status' },
  '/v1/models/:model': { endpoint: 'models', method: 'Status' },
};

function endpointOf(request: FastifyRequest): HttpEndpoint {
  return ROUTES[request.routeOptions.url ?? '']?.endpoint ?? 'other';
}

export class HttpApi {
  private constructor(
    private readonly app: FastifyInstance,
    /** host:port it listens on. */
    readonly address: string,
    private readonly detach: () => void,
  ) {}

  static async start(deps: HttpApiDeps, options: HttpApiOptions): Promise<HttpApi> {
    const bodyLimit = httpBodyLimitBytes(deps.maxPromptBytes);
    const common = { bodyLimit, logger: false, forceCloseConnections: true, return503OnClosing: true } as const;
    const tls = options.tls;
    const app = (tls === undefined ? Fastify(common) : Fastify({ ...common, https: { cert: tls.pem().cert, key: tls.pem().key } })) as unknown as FastifyInstance;
    const principals = new WeakMap<IncomingMessage, ApiKeyPrincipal>();
    const send = (reply: FastifyReply, endpoint: HttpEndpoint, answer: HttpError): FastifyReply => {
      deps.onResponse?.(endpoint, answer.status);
      return reply.code(answer.status).headers(answer.headers).send(answer.body);
    };

    // Any content type is read as JSON text; an empty or malformed body is a 400.
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', { parseAs: 'string' }, (_request, text, done) => {
      if (text === '') return done(new InvalidArgumentError('the request body is empty; send a JSON object'), undefined);
      try {
        done(null, JSON.parse(text as string));
      } catch (err) {
        done(new InvalidArgumentError(`the request body is not valid JSON: ${(err as Error).message}`), undefined);
      }
    });

    // Authentication comes before the body is read: an unknown caller costs no parsing.
    app.addHook('onRequest', async (request) => {
      const route = ROUTES[request.routeOptions.url ?? ''];
      const call = httpClientCall(request.headers, request.socket.remoteAddress, request.socket.remotePort);
      principals.set(request.raw, deps.gate.principal(call, route?.method ?? 'Status'));
    });

    const completion = (route: CompletionRoute) => async (request: FastifyRequest, reply: FastifyReply) => {
      const call = httpClientCall(request.headers, request.socket.remoteAddress, request.socket.remotePort);
      const result = await serveCompletion(deps, route, request.body, principals.get(request.raw)!, call, reply.raw, () => reply.hijack());
      if (result.kind === 'streamed') {
        deps.onResponse?.(endpointOf(request), result.status);
        return reply;
      }
      deps.onResponse?.(endpointOf(request), 200);
      return reply.send(result.body);
    };
    app.post('/v1/chat/completions', completion('chat'));
    app.post('/v1/completions', completion('text'));
    const startedSec = Math.floor(Date.now() / 1000);
    const model = { id: deps.modelId, object: 'model', created: startedSec, owned_by: 'bora' };
    app.get('/v1/models', async (request, reply) => {
      deps.onResponse?.(endpointOf(request), 200);
      return reply.send({ object: 'list', data: [model] });
    });
    app.get('/v1/models/:model', async (request, reply) => {
      const wanted = (request.params as { model: string }).model;
      if (wanted !== deps.modelId) throw new NotFoundError(`unknown model "${wanted.slice(0, 200)}"; this server serves "${deps.modelId}"`);
      deps.onResponse?.(endpointOf(request), 200);
      return reply.send(model);
    });

    app.setNotFoundHandler((request, reply) => send(reply, 'other', notFoundRoute(request.method, request.url)));
    app.setErrorHandler((err: Error & { code?: string; statusCode?: number }, request, reply) => {
      let answer: HttpError;
      if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') answer = bodyTooLarge(bodyLimit);
      else if (err instanceof BoraError) answer = httpErrorOf(err);
      else if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) {
        // fastify's own refusals of a malformed request (a bad content length, an aborted body).
        answer = { status: err.statusCode, body: { error: { message: err.message, type: 'invalid_request_error', param: null, code: null } }, headers: {} };
      } else {
        deps.log?.(`HTTP ${request.method} ${request.url}: ${err.stack ?? err.message}`);
        answer = httpErrorOf(err);
      }
      return send(reply, endpointOf(request), answer);
    });

    await app.listen({ host: options.host, port: options.port });
    const server = app.server as Server | HttpsServer;
    // A rotated certificate takes effect for new connections without a restart.
    const onIdentity = (update: { certificate: Buffer; privateKey: Buffer } | null): void => {
      if (update !== null && 'setSecureContext' in server) server.setSecureContext({ cert: update.certificate, key: update.privateKey });
    };
    tls?.addIdentityCertificateListener(onIdentity);
    const bound = server.address();
    const port = typeof bound === 'object' && bound !== null ? bound.port : options.port;
    return new HttpApi(app, `${options.host}:${port}`, () => tls?.removeIdentityCertificateListener(onIdentity));
  }

  async close(): Promise<void> {
    this.detach();
    await this.app.close();
  }
}
