/**
 * x-request-id on the HTTP API: a client's id is returned (JSON and streamed responses) and
 * reaches the generator's request; without one the API makes one; a malformed one is a 400
 * before any generation starts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestHttpApi, type TestHttpApi } from '../../../support/http-api';

describe('x-request-id on the HTTP API', () => {
  let api: TestHttpApi;
  before(async () => {
    api = await startTestHttpApi();
  });
  after(async () => api.close());

  const complete = (headers: Record<string, string>, stream = false): Promise<Response> =>
    fetch(`${api.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ prompt: 'hi', max_tokens: 2, stream }) });

  test('a client\'s id comes back and reaches the generator', async () => {
    const res = await complete({ 'x-request-id': 'http-req-1' });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-request-id'), 'http-req-1');
    await res.json();
    assert.equal(api.generator.started.at(-1)?.requestId, 'http-req-1');
  });

  test('a streamed response carries the id too', async () => {
    const res = await complete({ 'x-request-id': 'http-req-2' }, true);
    assert.equal(res.headers.get('x-request-id'), 'http-req-2');
    assert.match(await res.text(), /data: \[DONE\]/);
    assert.equal(api.generator.started.at(-1)?.requestId, 'http-req-2');
  });

  test('without one the API makes one, and each request gets its own', async () => {
    const a = await complete({});
    const b = await complete({});
    await Promise.all([a.text(), b.text()]);
    const ids = [a.headers.get('x-request-id'), b.headers.get('x-request-id')];
    for (const id of ids) assert.match(id ?? '', /^[0-9a-f-]{36}$/);
    assert.notEqual(ids[0], ids[1]);
    assert.equal(api.generator.started.at(-1)?.requestId, ids[1]);
  });

  test('a malformed id is a 400 and starts nothing', async () => {
    const before = api.generator.started.length;
    const res = await complete({ 'x-request-id': 'x'.repeat(129) });
    assert.equal(res.status, 400);
    const body = (await res.json()) as { error: { message: string } };
    assert.match(body.error.message, /x-request-id must be 1 to 128/);
    assert.equal(api.generator.started.length, before);
  });
});
