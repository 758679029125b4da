/**
 * The HTTP API's own behaviour over a scripted generator (test/support/http-api.ts): response
 * shapes, the SSE framing byte for byte, every refusal with OpenAI's error object and its status
 * (400 for each kind of bad input, 401, 404, 413, 429 with retry-after, 503), a disconnecting
 * client cancelling its request, and a fuzz over request bodies that never crashes or stalls the
 * server. The cluster tests (test/integration/http/) run the same API on real models.
 */
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, before, describe, test } from 'node:test';
import * as fc from 'fast-check';
import { PermissionDeniedError } from '../../../../common/errors';
import { ApiKeyStore, generateApiKey, hashApiKey } from '../../../../common/security/api-keys';
import { Admission } from '../../../../coordinator/admission';
import { httpBodyLimitBytes } from '../../../../coordinator/http/http-api';
import { httpErrorOf } from '../../../../coordinator/http/openai-error';
import { fuzzParameters } from '../../../support/fuzz';
import { startTestHttpApi, type TestHttpApi } from '../../../support/http-api';

interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  readonly json: any;
}

async function post(api: TestHttpApi, path: string, body: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await fetch(`${api.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

function assertError(answer: Answer, status: number, param: string | null, pattern: RegExp): void {
  assert.equal(answer.status, status, answer.text);
  const e = answer.json?.error;
  assert.ok(e !== undefined, `an OpenAI error object: ${answer.text}`);
  assert.deepEqual(Object.keys(e), ['message', 'type', 'param', 'code']);
  assert.equal(typeof e.message, 'string');
  assert.equal(e.param, param, answer.text);
  assert.match(e.message, pattern);
}

describe('HTTP API (scripted generator)', () => {
  let api: TestHttpApi;
  before(async () => {
    api = await startTestHttpApi({ maxPromptBytes: 1024, contextTokens: 256 });
  });
  after(() => api.close());

  test('a completion: the prompt as ids, usage counted exactly, finish_reason length', async () => {
    const a = await post(api, '/v1/completions', { model: 'test-model', prompt: 'Hi', max_tokens: 3, temperature: 0 });
    assert.equal(a.status, 200, a.text);
    assert.deepEqual(api.generator.started.at(-1)?.prompt, { kind: 'ids', ids: [1, 'H'.charCodeAt(0) + 3, 'i'.charCodeAt(0) + 3] });
    assert.deepEqual(api.generator.started.at(-1)?.sampling, { kind: 'greedy' });
    assert.match(a.json.id, /^cmpl-[0-9a-f]{32}$/);
    assert.deepEqual({ ...a.json, id: 'x', created: 0 }, {
      id: 'x',
      object: 'text_completion',
      created: 0,
      model: 'test-model',
      choices: [{ index: 0, text: 't0 t1 t2 ', logprobs: null, finish_reason: 'length' }],
      usage: { prompt_tokens: 3, completion_tokens: 3, total_tokens: 6 },
    });
  });

  test('a chat completion: messages in the [INST] format, system first; seeded sampling; logprobs', async () => {
    const a = await post(api, '/v1/chat/completions', {
      messages: [
        { role: 'system', content: 'S' },
        { role: 'user', content: [{ type: 'text', text: 'U' }] },
        { role: 'assistant', content: 'A' },
        { role: 'user', content: 'V' },
      ],
      max_completion_tokens: 2,
      temperature: 0.5,
      top_p: 0.9,
      seed: 7,
      stop: ['zz'],
      logprobs: true,
      top_logprobs: 2,
    });
    assert.equal(a.status, 200, a.text);
    const started = api.generator.started.at(-1)!;
    const bytes = (s: string): number[] => [...Buffer.from(s)].map((b) => b + 3);
    assert.deepEqual(started.prompt, { kind: 'ids', ids: [1, ...bytes('[INST] S\n\nU [/INST]'), ...bytes('A'), 2, ...bytes('[INST] V [/INST]')] });
    assert.deepEqual(started.sampling, { kind: 'random', temperature: 0.5, topK: 0, topP: 0.9, seed: 7n });
    assert.deepEqual(started.stop, ['zz']);
    assert.equal(started.maxTokens, 2);
    assert.equal(a.json.object, 'chat.completion');
    assert.deepEqual(a.json.choices[0].message, { role: 'assistant', content: 't0 t1 ' });
    assert.deepEqual(a.json.choices[0].logprobs.content[1], {
      token: '<101>',
      logprob: -0.5,
      bytes: [...Buffer.from('<101>')],
      top_logprobs: [
        { token: '<101>', logprob: -0.5, bytes: [...Buffer.from('<101>')] },
        { token: '<102>', logprob: -1.5, bytes: [...Buffer.from('<102>')] },
      ],
    });
    assert.equal(a.json.usage.prompt_tokens, started.prompt.kind === 'ids' ? started.prompt.ids.length : -1);
  });

  test('chat without max_tokens may use the rest of the context', async () => {
    const a = await post(api, '/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], stream: true });
    assert.equal(a.status, 200);
    const ids = api.generator.started.at(-1)!.prompt;
    assert.equal(api.generator.started.at(-1)!.maxTokens, 256 - (ids.kind === 'ids' ? ids.ids.length : 0));
  });

  test('SSE framing, byte for byte: chat with include_usage, and completions', async () => {
    const chat = await post(api, '/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], max_tokens: 2, stream: true, stream_options: { include_usage: true } });
    assert.equal(chat.status, 200);
    assert.equal(chat.headers.get('content-type'), 'text/event-stream; charset=utf-8');
    const { id, created } = JSON.parse(chat.text.slice('data: '.length, chat.text.indexOf('\n')));
    const head = `{"id":"${id}","object":"chat.completion.chunk","created":${created},"model":"test-model","choices":`;
    const expected =
      `data: ${head}[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":null}\n\n` +
      `data: ${head}[{"index":0,"delta":{"content":"t0 "},"logprobs":null,"finish_reason":null}],"usage":null}\n\n` +
      `data: ${head}[{"index":0,"delta":{"content":"t1 "},"logprobs":null,"finish_reason":null}],"usage":null}\n\n` +
      `data: ${head}[{"index":0,"delta":{},"logprobs":null,"finish_reason":"length"}],"usage":null}\n\n` +
      `data: ${head}[],"usage":{"prompt_tokens":17,"completion_tokens":2,"total_tokens":19}}\n\n` +
      'data: [DONE]\n\n';
    assert.equal(chat.text, expected);

    const text = await post(api, '/v1/completions', { prompt: [5, 6, 7], max_tokens: 2, stream: true });
    const first = JSON.parse(text.text.slice('data: '.length, text.text.indexOf('\n')));
    const th = `{"id":"${first.id}","object":"text_completion","created":${first.created},"model":"test-model","choices":`;
    assert.equal(
      text.text,
      `data: ${th}[{"index":0,"text":"t0 ","logprobs":null,"finish_reason":null}]}\n\n` +
        `data: ${th}[{"index":0,"text":"t1 ","logprobs":null,"finish_reason":null}]}\n\n` +
        `data: ${th}[{"index":0,"text":"","logprobs":null,"finish_reason":"length"}]}\n\n` +
        'data: [DONE]\n\n',
    );
  });

  test('bad input: a 400 with OpenAI\'s error object naming the field, and no generation started', async () => {
    const startedBefore = api.generator.started.length;
    const user = [{ role: 'user', content: 'hi' }];
    const cases: [string, unknown, string | null, RegExp][] = [
      ['/v1/chat/completions', '{"messages": [', null, /not valid JSON/],
      ['/v1/chat/completions', '[1, 2]', 'body', /JSON object/],
      ['/v1/chat/completions', { messages: [] }, 'messages', /at least one/],
      ['/v1/chat/completions', { messages: 'hi' }, 'messages', /must be an array/],
      ['/v1/chat/completions', { messages: [{ role: 'tool', content: 'x' }] }, 'messages.0.role', /one of system, user, assistant/],
      ['/v1/chat/completions', { messages: [{ role: 'user', content: 5 }] }, 'messages.0.content', /string or an array/],
      ['/v1/chat/completions', { messages: [{ role: 'user', content: 'x', name: 'n' }] }, 'messages.0.name', /unsupported field/],
      ['/v1/chat/completions', { messages: [{ role: 'assistant', content: 'x' }] }, 'messages.0.role', /follow a user/],
      ['/v1/chat/completions', { messages: user, model: 5 }, 'model', /string/],
      ['/v1/chat/completions', { messages: user, max_tokens: '5' }, 'max_tokens', /integer/],
      ['/v1/chat/completions', { messages: user, max_completion_tokens: 1.5 }, 'max_completion_tokens', /integer/],
      ['/v1/chat/completions', { messages: user, temperature: 'hot' }, 'temperature', /number/],
      ['/v1/chat/completions', { messages: user, temperature: 3 }, 'temperature', /\[0, 2\]/],
      ['/v1/chat/completions', { messages: user, top_p: 0 }, 'top_p', /\(0, 1\]/],
      ['/v1/chat/completions', { messages: user, seed: -1 }, 'seed', /integer/],
      ['/v1/chat/completions', { messages: user, stop: 5 }, 'stop', /string or an array/],
      ['/v1/chat/completions', { messages: user, stop: ['a', 'b', 'c', 'd', 'e'] }, 'stop', /at most 4/],
      ['/v1/chat/completions', { messages: user, stop: [''] }, 'stop.0', /non-empty/],
      ['/v1/chat/completions', { messages: user, stream: 'yes' }, 'stream', /boolean/],
      ['/v1/chat/completions', { messages: user, stream_options: { include_usage: true } }, 'stream_options', /stream: true/],
      ['/v1/chat/completions', { messages: user, stream: true, stream_options: { include_usage: 1 } }, 'stream_options.include_usage', /boolean/],
      ['/v1/chat/completions', { messages: user, logprobs: 'yes' }, 'logprobs', /boolean/],
      ['/v1/chat/completions', { messages: user, logprobs: true, top_logprobs: 50 }, 'top_logprobs', /\[0, 20\]/],
      ['/v1/chat/completions', { messages: user, n: 2 }, 'n', /must be 1/],
      ['/v1/chat/completions', { messages: user, frequency_penalty: 0 }, 'frequency_penalty', /unsupported field/],
      ['/v1/chat/completions', { messages: user, max_tokens: 1000 }, 'max_tokens', /leaves room for/],
      ['/v1/chat/completions', { messages: [{ role: 'user', content: 'x'.repeat(600) }] }, 'messages', /context is 256 tokens/],
      ['/v1/chat/completions', { messages: [{ role: 'user', content: 'x'.repeat(2000) }] }, 'messages', /--max-prompt-bytes/],
      ['/v1/chat/completions', { messages: [{ role: 'system', content: 'x' }] }, 'messages', /no user message/],
      ['/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }, { role: 'assistant', content: 'y' }] }, 'messages.1.role', /last message/],
      ['/v1/completions', { prompt: {} }, 'prompt', /non-empty string or array/],
      ['/v1/completions', { prompt: ['a', 'b'] }, 'prompt', /one prompt per request/],
      ['/v1/completions', { prompt: '' }, 'prompt', /empty/],
      ['/v1/completions', {}, 'prompt', /required/],
      ['/v1/completions', { prompt: 'x', logprobs: 10 }, 'logprobs', /\[0, 5\]/],
      ['/v1/completions', { prompt: 'x', messages: user }, 'messages', /unsupported field/],
      ['/v1/completions', { prompt: 'x'.repeat(600) }, 'prompt', /context is 256 tokens/],
      ['/v1/completions', { prompt: [1, 32000] }, 'prompt', /outside the vocabulary/],
      ['/v1/completions', { prompt: 'x'.repeat(2000) }, 'prompt', /--max-prompt-bytes/],
    ];
    for (const [path, body, param, pattern] of cases) {
      assertError(await post(api, path, body), 400, param, pattern);
    }
    assert.equal(api.generator.started.length, startedBefore, 'no bad request reached the generator');
    assert.ok(api.responses.some((r) => r.endpoint === 'chat_completions' && r.status === 400), 'counted per endpoint and status');
  });

  test('a body over the byte limit is a 413; the limit comes from --max-prompt-bytes', async () => {
    const limit = httpBodyLimitBytes(1024);
    assert.equal(limit, 6 * 1024 + 64 * 1024);
    const a = await post(api, '/v1/completions', JSON.stringify({ prompt: 'x'.repeat(limit) }));
    assertError(a, 413, null, new RegExp(`over ${limit} bytes`));
    assert.equal(a.json.error.code, 'request_too_large');
  });

  test('unknown model and unknown route: 404', async () => {
    const a = await post(api, '/v1/completions', { model: 'gpt-4', prompt: 'x' });
    assertError(a, 404, null, /unknown model "gpt-4"/);
    assert.equal(a.json.error.code, 'model_not_found');
    assertError(await post(api, '/v1/nothing', {}), 404, null, /no route POST \/v1\/nothing/);
    const models = await (await fetch(`${api.url}/v1/models`)).json();
    assert.deepEqual(models.data.map((m: { id: string }) => m.id), ['test-model']);
    assert.equal((await fetch(`${api.url}/v1/models/other`)).status, 404);
    assert.equal((await fetch(`${api.url}/v1/models/test-model`)).status, 200);
  });

  test('503 with retry-after while no plan is serving', async () => {
    api.serving = false;
    try {
      const a = await post(api, '/v1/completions', { prompt: 'x' });
      assertError(a, 503, null, /no plan is serving/);
      assert.equal(a.headers.get('retry-after'), '1');
    } finally {
      api.serving = true;
    }
  });

  test('a client that disconnects mid-stream cancels its request', async () => {
    api.generator.tokenIntervalMs = 20;
    const before = api.generator.cancelled;
    try {
      await new Promise<void>((resolve, reject) => {
        const req = httpRequest(`${api.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        });
        req.on('error', () => undefined);
        req.end(JSON.stringify({ prompt: 'x', max_tokens: 200, stream: true }));
        setTimeout(() => reject(new Error('no data')), 5000);
      });
      const deadline = Date.now() + 5000;
      while (api.generator.cancelled === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.equal(api.generator.cancelled, before + 1, 'the request was cancelled');
    } finally {
      api.generator.tokenIntervalMs = 1;
    }
  });

  test('PERMISSION_DENIED maps to 403 (no HTTP route denies a valid key today: both roles may use them)', () => {
    const e = httpErrorOf(new PermissionDeniedError('no'));
    assert.equal(e.status, 403);
    assert.equal(e.body.error.type, 'permission_error');
  });

  test('fuzz: any body gets 200 or a 4xx with an error object; the server keeps serving', async () => {
    const user = { role: 'user', content: 'hi' };
    const valid = fc.record({ messages: fc.constant([user]), max_tokens: fc.integer({ min: 1, max: 4 }) }, { requiredKeys: ['messages'] });
    const field = fc.constantFrom('messages', 'max_tokens', 'temperature', 'top_p', 'seed', 'stop', 'stream', 'stream_options', 'logprobs', 'top_logprobs', 'n', 'model', 'prompt');
    const body = fc.oneof(
      fc.json(),
      fc.string(),
      fc.tuple(valid, field, fc.jsonValue()).map(([v, f, x]) => JSON.stringify({ ...v, [f]: x })),
      fc.tuple(valid, fc.jsonValue()).map(([v, x]) => JSON.stringify({ ...v, messages: [x] })),
    );
    await fc.assert(
      fc.asyncProperty(body, fc.constantFrom('/v1/chat/completions', '/v1/completions'), async (b, path) => {
        const a = await post(api, path, b);
        if (a.status === 200) return;
        assert.ok([400, 404, 413].includes(a.status), `status ${a.status}: ${a.text}`);
        assert.deepEqual(Object.keys(a.json?.error ?? {}), ['message', 'type', 'param', 'code'], a.text);
      }),
      fuzzParameters(150),
    );
    const ok = await post(api, '/v1/completions', { prompt: 'x', max_tokens: 2 });
    assert.equal(ok.status, 200);
  });
});

describe('HTTP API auth and admission', () => {
  const key = generateApiKey();
  const keys = new ApiKeyStore([{ name: 'app', role: 'client', sha256: hashApiKey(key), createdAtMs: 0 }]);
  let api: TestHttpApi;
  before(async () => {
    const admission = new Admission({ defaultLimits: { requestsPerSecond: 100, tokensPerMinute: 1_000_000, maxConcurrentStreams: 1 }, maxActiveStreams: 8, maxQueuedStreams: 0, maxQueueWaitMs: 1000 });
    api = await startTestHttpApi({ gate: { keys, admission, audit: undefined } });
  });
  after(() => api.close());

  test('401 for a missing, malformed or unknown key, before the body is read; 200 with the key', async () => {
    assertError(await post(api, '/v1/completions', { prompt: 'x' }), 401, null, /missing API key/);
    assertError(await post(api, '/v1/completions', '{not json', { authorization: 'Bearer nope' }), 401, null, /malformed API key/);
    assertError(await post(api, '/v1/completions', { prompt: 'x' }, { authorization: `Bearer ${generateApiKey()}` }), 401, null, /unknown API key/);
    assert.equal((await fetch(`${api.url}/v1/models`)).status, 401);
    const ok = await post(api, '/v1/completions', { prompt: 'x', max_tokens: 2 }, { authorization: `Bearer ${key}` });
    assert.equal(ok.status, 200, ok.text);
  });

  test('429 with retry-after past an admission limit (one stream per key)', async () => {
    api.generator.tokenIntervalMs = 20;
    const auth = { authorization: `Bearer ${key}` };
    const first = fetch(`${api.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...auth }, body: JSON.stringify({ prompt: 'x', max_tokens: 20, stream: true }) });
    const res = await first;
    assert.equal(res.status, 200);
    const refused = await post(api, '/v1/completions', { prompt: 'x', max_tokens: 2 }, auth);
    assertError(refused, 429, null, /streams open or queued/);
    assert.equal(refused.json.error.code, 'rate_limit_exceeded');
    assert.ok(Number(refused.headers.get('retry-after')) >= 1, 'retry-after in whole seconds');
    await res.text();
    api.generator.tokenIntervalMs = 1;
  });
});
