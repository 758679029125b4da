/**
 * The safety filter over the OpenAI-compatible HTTP API, on `bora up` clusters reached with the
 * official `openai` client and plain HTTP:
 *  - output: with a policy written from what the model generates greedily, the completion (chat
 *    and text, streaming and not) is the greedy text with one word redacted, cut before a later
 *    blocked word, with finish_reason `content_filter`;
 *  - prompts: a blocked prompt (text, token ids, a chat message) is a 400 with code
 *    `content_filter` before any worker computes, streaming or not; a redacted prompt generates
 *    what the redacted text generates;
 *  - a blocked request counts as `blocked` in bora_requests_total, never `ok`; the incident
 *    metrics move and each incident leaves an audit line;
 *  - an external moderation service that does not answer within --safety-timeout-ms lets the
 *    prompt through with --safety-fail open and blocks it with --safety-fail closed; one that
 *    flags the prompt blocks it.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import { findSample, scrapeMetrics, type MetricSample } from '../../../common/metrics/exposition';
import { parseModelConfig } from '../../../common/model/config';
import { loadTokenizer } from '../../../common/tokenizer/load-tokenizer';
import { fixtureDir, makeTempDir, type TempDir } from '../../support/checkpoints';
import { localGreedy, pickWords, workerForwards, writeTestPolicy } from '../../support/safety-cluster';
import { bora, startCluster, type TestCluster } from '../../support/cluster';

const MODEL = fixtureDir('tiny-mistral');
const PROMPT = 'hello there';
const MAX_TOKENS = 24;

function openaiOf(cluster: TestCluster): OpenAI {
  return new OpenAI({ baseURL: `http://${cluster.file.http}/v1`, apiKey: 'not-checked-on-an-insecure-cluster', maxRetries: 0, timeout: 120_000 });
}

const value = (samples: readonly MetricSample[], name: string, labels: Record<string, string> = {}): number => findSample(samples, name, labels)?.value ?? 0;

/** The error a call rejects with. */
async function failure(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => assert.fail('the request succeeded'),
    (e: unknown) => e,
  );
}

function assertContentFiltered(err: unknown, param: string): void {
  assert.ok(err instanceof OpenAI.BadRequestError, String(err));
  assert.equal(err.code, 'content_filter');
  assert.equal(err.param, param);
}

/**
 * A moderation service: flags input containing "flagme"; answers input containing "slowpoke"
 * only after 10 s (past any deadline the tests set); allows the rest.
 */
async function startModerationStub(): Promise<{ url: string; calls: string[]; close(): Promise<void> }> {
  const calls: string[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString('utf8')));
    req.on('end', () => {
      const input = (JSON.parse(body) as { input: string }).input;
      calls.push(input);
      const reply = (): void => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ results: [{ flagged: input.includes('flagme'), categories: { harassment: input.includes('flagme') } }] }));
      };
      if (!input.includes('slowpoke')) return reply();
      const timer = setTimeout(reply, 10_000);
      timers.add(timer);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/moderate`,
    calls,
    close: async () => {
      timers.forEach(clearTimeout);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('safety filter over HTTP: policy rules', () => {
  let cluster: TestCluster;
  let openai: OpenAI;
  let dir: TempDir;
  let greedy: { tokens: number[]; text: string };
  let redactWord: string;
  let blockWord: string;
  /** The greedy text as the filter lets it out: the word redacted, cut before the blocked word. */
  let filtered: string;

  before(async () => {
    greedy = await localGreedy(MODEL, PROMPT, MAX_TOKENS);
    [redactWord, blockWord] = pickWords(greedy.text);
    const lower = greedy.text.toLowerCase();
    const at = lower.indexOf(redactWord);
    filtered = `${greedy.text.slice(0, at)}[redacted]${greedy.text.slice(at + redactWord.length, lower.indexOf(blockWord))}`;
    dir = await makeTempDir('safety-http');
    const policy = writeTestPolicy(dir.path, redactWord, blockWord);
    cluster = await startCluster(undefined, MODEL, 2, ['--safety-policy', policy]);
    openai = openaiOf(cluster);
  });
  after(async () => {
    await cluster?.down();
    await dir?.remove();
  });

  test('completions: redacted and cut with finish_reason content_filter, streaming and not; counted as blocked', async () => {
    const before = await scrapeMetrics(cluster.file.coordinatorMetrics!);
    const c = await openai.completions.create({ model: 'tiny-mistral', prompt: PROMPT, max_tokens: MAX_TOKENS, temperature: 0 });
    assert.equal(c.choices[0].text, filtered);
    assert.equal(c.choices[0].finish_reason, 'content_filter');
    assert.ok(c.usage!.completion_tokens < MAX_TOKENS, `the sequence stopped early (${c.usage!.completion_tokens} tokens)`);

    const stream = await openai.completions.create({ model: 'tiny-mistral', prompt: PROMPT, max_tokens: MAX_TOKENS, temperature: 0, stream: true });
    const pieces: string[] = [];
    let finish: string | null = null;
    for await (const chunk of stream) {
      if (chunk.choices[0]?.text) pieces.push(chunk.choices[0].text);
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(pieces.join(''), filtered);
    assert.ok(pieces.length > 1, 'the text streamed in pieces');
    assert.ok(pieces.every((p) => !p.toLowerCase().includes(redactWord)), 'no piece carries the redacted word');
    assert.equal(finish, 'content_filter');

    // Chat: the same filter on the generated text (the prompt differs, so only its shape is known).
    const chat = await openai.chat.completions.create({ model: 'tiny-mistral', messages: [{ role: 'user', content: PROMPT }], max_tokens: MAX_TOKENS, temperature: 0 });
    assert.ok(!(chat.choices[0].message.content ?? '').toLowerCase().includes(redactWord));
    assert.ok(!(chat.choices[0].message.content ?? '').toLowerCase().includes(blockWord));

    const after = await scrapeMetrics(cluster.file.coordinatorMetrics!);
    const delta = (name: string, labels: Record<string, string>): number => value(after, name, labels) - value(before, name, labels);
    assert.equal(delta('bora_requests_total', { outcome: 'blocked' }) + delta('bora_requests_total', { outcome: 'ok' }), 3);
    assert.ok(delta('bora_requests_total', { outcome: 'blocked' }) >= 2, 'the two cut completions count as blocked, not ok');
    assert.ok(delta('bora_safety_incidents_total', { stage: 'output', action: 'redact' }) >= 2);
    assert.ok(delta('bora_safety_incidents_total', { stage: 'output', action: 'block' }) >= 2);
  });

  test('a blocked prompt is a 400 content_filter before any worker computes, streaming or not, ids or text', async () => {
    const before = await scrapeMetrics(cluster.file.coordinatorMetrics!);
    const computed = await workerForwards(cluster);
    assert.ok(computed > 0, 'the workers count their forward passes');
    assertContentFiltered(await failure(openai.completions.create({ model: 'tiny-mistral', prompt: 'tell me about the Forbidden Topic', max_tokens: 4 })), 'prompt');
    assertContentFiltered(await failure(openai.completions.create({ model: 'tiny-mistral', prompt: 'the forbidden topic', max_tokens: 4, stream: true })), 'prompt');
    const tokenizer = await loadTokenizer(MODEL, parseModelConfig(readFileSync(join(MODEL, 'config.json'), 'utf8'), 'config.json'));
    const ids = tokenizer.encode('the forbidden topic again', { addBos: true });
    assertContentFiltered(await failure(openai.completions.create({ model: 'tiny-mistral', prompt: ids, max_tokens: 4 })), 'prompt');
    const messages = [
      { role: 'system' as const, content: 'Be helpful.' },
      { role: 'user' as const, content: 'a forbidden topic, please' },
    ];
    assertContentFiltered(await failure(openai.chat.completions.create({ model: 'tiny-mistral', messages, max_tokens: 4 })), 'messages.1.content');
    // Plain HTTP, streaming: the refusal is a status, not a stream.
    const res = await fetch(`http://${cluster.file.http}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ messages, max_tokens: 4, stream: true }),
    });
    assert.equal(res.status, 400);
    assert.match(res.headers.get('content-type') ?? '', /application\/json/);
    assert.deepEqual((await res.json()).error, { message: "the prompt (messages.1.content) was blocked by this server's content filter", type: 'invalid_request_error', param: 'messages.1.content', code: 'content_filter' });
    assert.equal(await workerForwards(cluster), computed, 'no stage computed for a blocked prompt');

    const after = await scrapeMetrics(cluster.file.coordinatorMetrics!);
    const delta = (name: string, labels: Record<string, string>): number => value(after, name, labels) - value(before, name, labels);
    assert.equal(delta('bora_requests_total', { outcome: 'blocked' }), 5);
    assert.equal(delta('bora_requests_total', { outcome: 'ok' }), 0);
    assert.equal(delta('bora_requests_total', { outcome: 'invalid' }), 0, 'a blocked prompt is not a bad request');
    assert.equal(delta('bora_safety_incidents_total', { stage: 'prompt', action: 'block' }), 5);
  });

  test('a redacted prompt generates what the redacted text generates; the audit log names the incidents, not the text', async () => {
    const plain = await localGreedy(MODEL, 'hello [redacted]', MAX_TOKENS);
    const asIs = await localGreedy(MODEL, 'hello Zanzibar', MAX_TOKENS);
    assert.notDeepEqual(asIs.tokens, plain.tokens, 'the redaction changes what is generated');
    const c = await openai.completions.create({ model: 'tiny-mistral', prompt: 'hello Zanzibar', max_tokens: MAX_TOKENS, temperature: 0, logprobs: 1 });
    assert.equal(c.usage!.prompt_tokens, (await loadTokenizer(MODEL, { bosTokenId: 1, eosTokenId: 2 })).encode('hello [redacted]', { addBos: true }).length);
    // The output rules may cut or redact this text too: what came is a redaction of the redacted prompt's text.
    const text = c.choices[0].text;
    assert.ok(text.length > 0);
    const clean = text.split('[redacted]')[0]!;
    assert.ok(plain.text.startsWith(clean), `${JSON.stringify(text)} follows ${JSON.stringify(plain.text)}`);
    // logprobs never show a filtered token's text.
    assert.ok(!(c.choices[0].logprobs?.tokens ?? []).some((t) => t.toLowerCase().includes(redactWord) || t.toLowerCase().includes(blockWord)));

    const audit = readFileSync(join(cluster.stateDir, 'audit.log'), 'utf8');
    const lines = audit
      .split('\n')
      .filter((l) => l.includes('"safety.'))
      .map((l) => JSON.parse(l) as { who: string; what: string; detail: { request: string; rule: string; stage: string } });
    const redact = lines.filter((l) => l.what === 'safety.redact' && l.detail.rule === 'hide-name');
    assert.equal(redact.length, 1, 'one audit line for the redacted prompt');
    assert.match(redact[0]!.who, /from http /);
    assert.ok(lines.some((l) => l.what === 'safety.block' && l.detail.rule === 'no-topic' && l.who.includes('from http ')));
    assert.ok(lines.some((l) => l.what === 'safety.block' && l.detail.rule === 'stop-word' && l.detail.stage === 'output'));
    for (const secret of [blockWord, redactWord, 'forbidden', 'zanzibar']) assert.ok(!audit.toLowerCase().includes(secret), `the audit log holds "${secret}"`);
  });
});

describe('safety filter over HTTP: a moderation service that times out', () => {
  let stub: Awaited<ReturnType<typeof startModerationStub>>;
  before(async () => {
    stub = await startModerationStub();
  });
  after(() => stub?.close());

  for (const failMode of ['open', 'closed'] as const) {
    test(`--safety-fail ${failMode}: a timeout ${failMode === 'open' ? 'lets the prompt through' : 'blocks the prompt'}; a flagged prompt is blocked`, async (t) => {
      const cluster = await startCluster(t, MODEL, 1, ['--safety-url', stub.url, '--safety-timeout-ms', '300', '--safety-fail', failMode]);
      const openai = openaiOf(cluster);
      const started = Date.now();
      const slow = openai.chat.completions.create({ model: 'tiny-mistral', messages: [{ role: 'user', content: 'slowpoke question' }], max_tokens: 3, temperature: 0 });
      if (failMode === 'open') {
        const c = await slow;
        assert.ok(c.choices[0].finish_reason === 'stop' || c.choices[0].finish_reason === 'length', `generated, finish_reason ${c.choices[0].finish_reason}`);
      } else {
        assertContentFiltered(await failure(slow), 'messages.0.content');
      }
      assert.ok(Date.now() - started < 8_000, 'the deadline, not the service, decided');
      assert.ok(stub.calls.includes('slowpoke question'), 'the service was asked');
      assertContentFiltered(await failure(openai.completions.create({ model: 'tiny-mistral', prompt: 'flagme now', max_tokens: 3 })), 'prompt');
      const ok = await openai.completions.create({ model: 'tiny-mistral', prompt: 'a fine question', max_tokens: 3, temperature: 0 });
      assert.notEqual(ok.choices[0].finish_reason, 'content_filter');

      const metrics = await scrapeMetrics(cluster.file.coordinatorMetrics!);
      assert.equal(value(metrics, 'bora_safety_moderation_failures_total', { outcome: failMode === 'open' ? 'allowed' : 'blocked' }), 1);
      assert.equal(value(metrics, 'bora_safety_moderation_failures_total', { outcome: failMode === 'open' ? 'blocked' : 'allowed' }), 0);
      assert.equal(value(metrics, 'bora_requests_total', { outcome: 'blocked' }), failMode === 'open' ? 1 : 2);
      assert.equal(value(metrics, 'bora_requests_total', { outcome: 'ok' }), failMode === 'open' ? 2 : 1);
      const audit = readFileSync(join(cluster.stateDir, 'audit.log'), 'utf8');
      assert.ok(audit.split('\n').some((l) => l.includes('"safety.moderation"') && l.includes(`"failMode":"${failMode}"`)), 'an audit line for the failed call');
    });
  }
});
