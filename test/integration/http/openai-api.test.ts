/**
 * The OpenAI-compatible HTTP API on a `bora up` cluster, driven by the official `openai` npm
 * client and by plain HTTP: chat and completions, streaming and not; greedy output equal to
 * `bora generate --greedy` on the same prompt; exact usage; logprobs; a client disconnecting
 * mid-stream frees its KV on every stage; a worker SIGKILLed mid-stream is invisible to the HTTP
 * client; and a secure cluster serves HTTPS with API keys.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import { fetchStatus } from '../../../cli/inference-client';
import { waitFor } from '../../../cli/processes';
import { fixtureDir } from '../../support/checkpoints';
import { bora, generateOn, startCluster, type TestCluster } from '../../support/cluster';

const MODEL = fixtureDir('tiny-mistral');

function client(cluster: TestCluster): OpenAI {
  return new OpenAI({ baseURL: `http://${cluster.file.http}/v1`, apiKey: 'not-checked-on-an-insecure-cluster', maxRetries: 0, timeout: 120_000 });
}

/** `bora generate --greedy --json` on the cluster: the CLI's text and token count. */
async function cliGreedy(cluster: TestCluster, prompt: string, maxTokens: number): Promise<{ text: string; tokens: number[]; finish: string }> {
  const out = await bora(['generate', '--state-dir', cluster.stateDir, '--greedy', '--json', '--prompt', prompt, '--max-tokens', String(maxTokens)]);
  return JSON.parse(out.trim().split('\n').at(-1)!);
}

/** Reads an SSE body from fetch, frame by frame, until `stopAfter` frames or the end; the rest stays unread. */
async function sseFrames(res: Response, stopAfter = Infinity): Promise<string[]> {
  const frames: string[] = [];
  const decoder = new TextDecoder();
  let buffered = '';
  const reader = res.body!.getReader();
  while (frames.length < stopAfter) {
    const { value, done } = await reader.read();
    if (done) break;
    buffered += decoder.decode(value, { stream: true });
    let end: number;
    while ((end = buffered.indexOf('\n\n')) >= 0) {
      frames.push(buffered.slice(0, end + 2));
      buffered = buffered.slice(end + 2);
    }
  }
  // Left unread past stopAfter (not cancelled, which would close the connection).
  reader.releaseLock();
  return frames;
}

describe('HTTP API on a local cluster (openai client)', () => {
  let cluster: TestCluster;
  let openai: OpenAI;
  before(async () => {
    cluster = await startCluster(undefined, MODEL, 3);
    openai = client(cluster);
  });
  after(() => cluster?.down());

  test('bora up writes the HTTP address into cluster.json; GET /v1/models names the served model', async () => {
    assert.match(cluster.file.http ?? '', /^127\.0\.0\.1:\d+$/);
    const models = await openai.models.list();
    assert.deepEqual(models.data.map((m) => m.id), ['tiny-mistral']);
  });

  test('completions, greedy (temperature 0): the same text as `bora generate --greedy`, usage exact, streaming equal', async () => {
    const prompt = 'The quick brown fox';
    const cli = await cliGreedy(cluster, prompt, 24);
    const c = await openai.completions.create({ model: 'tiny-mistral', prompt, max_tokens: 24, temperature: 0 });
    assert.equal(c.choices[0].text, cli.text);
    assert.equal(c.usage?.completion_tokens, cli.tokens.length);
    assert.equal(c.choices[0].finish_reason, cli.finish === 'length' ? 'length' : 'stop');
    // usage.prompt_tokens: what the gRPC API counts for the same text prompt.
    const grpc = await generateOn(cluster.file.coordinator, { prompt: { kind: 'text', text: prompt }, maxTokens: 1, sampling: { kind: 'greedy' }, stop: [], ignoreEos: false, returnFirstLogits: false });
    assert.equal(c.usage?.prompt_tokens, grpc.finish.promptTokens);
    assert.equal(c.usage?.total_tokens, grpc.finish.promptTokens + cli.tokens.length);

    const stream = await openai.completions.create({ model: 'tiny-mistral', prompt, max_tokens: 24, temperature: 0, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      if (chunk.choices.length > 0) {
        text += chunk.choices[0].text;
        finish = chunk.choices[0].finish_reason ?? finish;
      }
      if (chunk.usage) usage = chunk.usage;
    }
    assert.equal(text, cli.text);
    assert.equal(finish, c.choices[0].finish_reason);
    assert.deepEqual(usage, c.usage);
  });

  test('chat, greedy: one user message equals `bora generate --greedy` on "[INST] ... [/INST]"; streaming equal', async () => {
    const cli = await cliGreedy(cluster, '[INST] Tell me a story [/INST]', 20);
    const c = await openai.chat.completions.create({ model: 'tiny-mistral', messages: [{ role: 'user', content: 'Tell me a story' }], max_tokens: 20, temperature: 0 });
    assert.equal(c.object, 'chat.completion');
    assert.equal(c.choices[0].message.role, 'assistant');
    assert.equal(c.choices[0].message.content, cli.text);
    assert.equal(c.usage?.completion_tokens, cli.tokens.length);

    const stream = await openai.chat.completions.create({ messages: [{ role: 'user', content: 'Tell me a story' }], max_completion_tokens: 20, temperature: 0, stream: true, model: 'tiny-mistral' });
    let text = '';
    let role: string | undefined;
    let finish: string | null = null;
    for await (const chunk of stream) {
      role ??= chunk.choices[0]?.delta.role;
      text += chunk.choices[0]?.delta.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(role, 'assistant');
    assert.equal(text, cli.text);
    assert.equal(finish, c.choices[0].finish_reason);
  });

  test('seeded sampling is reproducible; a stop string ends the text before it with finish_reason stop', async () => {
    const ask = (): Promise<OpenAI.Completion> => openai.completions.create({ model: 'tiny-mistral', prompt: 'Once upon', max_tokens: 30, temperature: 0.9, top_p: 0.95, seed: 1234 });
    const [a, b] = [await ask(), await ask()];
    assert.equal(a.choices[0].text, b.choices[0].text);
    const full = (await openai.completions.create({ model: 'tiny-mistral', prompt: 'Once upon', max_tokens: 30, temperature: 0 })).choices[0].text;
    const stop = full.slice(8, 11);
    assert.ok(stop.trim().length > 0, `a stop string from the text: ${JSON.stringify(full)}`);
    const stopped = await openai.completions.create({ model: 'tiny-mistral', prompt: 'Once upon', max_tokens: 30, temperature: 0, stop: [stop] });
    assert.equal(stopped.choices[0].finish_reason, 'stop');
    assert.equal(stopped.choices[0].text, full.slice(0, full.indexOf(stop)));
  });

  test('logprobs: the greedy token is the most likely alternative, log-probabilities are <= 0', async () => {
    const c = await openai.chat.completions.create({ model: 'tiny-mistral', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 6, temperature: 0, logprobs: true, top_logprobs: 3 });
    const content = c.choices[0].logprobs?.content ?? [];
    assert.equal(content.length, c.usage?.completion_tokens);
    for (const t of content) {
      assert.equal(t.top_logprobs.length, 3);
      assert.equal(t.top_logprobs[0].logprob, t.logprob);
      assert.ok(t.logprob <= 0 && t.top_logprobs[1].logprob <= t.top_logprobs[0].logprob);
    }
  });

  test('errors through the client: 400 naming the field, 404 for another model', async () => {
    const bad = await openai.chat.completions.create({ model: 'tiny-mistral', messages: [], max_tokens: 2 }).then(() => undefined, (e: unknown) => e);
    assert.ok(bad instanceof OpenAI.BadRequestError, String(bad));
    assert.equal(bad.param, 'messages');
    const over = await openai.completions.create({ model: 'tiny-mistral', prompt: 'x', max_tokens: 100_000 }).then(() => undefined, (e: unknown) => e);
    assert.ok(over instanceof OpenAI.BadRequestError && over.param === 'max_tokens', String(over));
    const other = await openai.completions.create({ model: 'gpt-4', prompt: 'x' }).then(() => undefined, (e: unknown) => e);
    assert.ok(other instanceof OpenAI.NotFoundError, String(other));
  });

  test('a client that disconnects mid-stream frees its KV cache on every stage', async () => {
    const controller = new AbortController();
    const res = await fetch(`http://${cluster.file.http}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      // Sampled, not greedy: a greedy run of this random model can fall into EOS early.
      body: JSON.stringify({ prompt: [1, 415, 2936, 9060], max_tokens: 2000, temperature: 1, seed: 5, stream: true }),
      signal: controller.signal,
    });
    assert.equal(res.status, 200);
    assert.equal((await sseFrames(res, 10)).length, 10, 'the stream is still going');
    const during = await fetchStatus(cluster.file.coordinator);
    assert.ok(during.workers.every((w) => w.sequences === 1 && w.kvCacheBytes > 0), `every stage holds the sequence: ${JSON.stringify(during.workers)}`);
    controller.abort();
    const freed = await waitFor('caches to be freed', 10_000, async () => {
      const s = await fetchStatus(cluster.file.coordinator);
      return s.workers.every((w) => w.sequences === 0) ? s : undefined;
    });
    assert.equal(freed.activeSequences, 0);
  });
});

describe('HTTP API: a worker SIGKILLed mid-stream', () => {
  test('the HTTP stream completes with the same text as a fault-free run, nothing lost or repeated', async (t) => {
    const cluster = await startCluster(t, MODEL, 3);
    const body = (seeded: boolean): string =>
      JSON.stringify({ prompt: [1, 1014, 3290, 5018, 331], max_tokens: 120, stream: true, stream_options: { include_usage: true }, ...(seeded ? { temperature: 0.8, seed: 99 } : { temperature: 0 }) });
    const url = `http://${cluster.file.http}/v1/completions`;
    const textOf = (frames: string[]): string =>
      frames
        .filter((f) => f !== 'data: [DONE]\n\n')
        .map((f) => JSON.parse(f.slice('data: '.length)))
        .map((c) => c.choices[0]?.text ?? '')
        .join('');
    const post = (seeded: boolean): Promise<Response> => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body(seeded) });
    const reference = await Promise.all([post(false), post(true)].map(async (r) => sseFrames(await r)));

    const responses = await Promise.all([post(false), post(true)]);
    const readers = responses.map((r) => r.body!.getReader());
    const decoder = new TextDecoder();
    const received = ['', ''];
    const read = async (i: number): Promise<void> => {
      for (;;) {
        const { value, done } = await readers[i].read();
        if (done) return;
        received[i] += decoder.decode(value, { stream: true });
      }
    };
    const reading = [read(0), read(1)];
    await waitFor('10 chunks on both streams', 60_000, async () => (received.every((r) => r.split('\n\n').length > 10) ? true : undefined), 5);
    assert.ok(received.every((r) => !r.includes('[DONE]')), 'both streams are mid-way when the worker dies');
    const worker = cluster.file.workers.find((w) => w.id === 'w2')!;
    process.kill(worker.pid, 'SIGKILL');
    await Promise.all(reading);
    for (const i of [0, 1]) {
      const frames = received[i].split(/(?<=\n\n)/);
      assert.equal(frames.at(-1), 'data: [DONE]\n\n', 'the stream ended normally');
      assert.equal(textOf(frames), textOf(reference[i]), `stream ${i}: the same text as the fault-free run`);
      const usage = JSON.parse(frames.at(-2)!.slice('data: '.length)).usage;
      const refUsage = JSON.parse(reference[i].at(-2)!.slice('data: '.length)).usage;
      assert.deepEqual(usage, refUsage);
      assert.equal(usage.completion_tokens, 120, 'generated to max_tokens (the kill was mid-stream)');
    }
    const status = await fetchStatus(cluster.file.coordinator);
    assert.ok(status.planEpoch >= 2, 'a new plan replaced the broken one');
  });
});

/** POST over HTTPS trusting `ca`; resolves with the status and body. */
function postTls(address: string, ca: Buffer, path: string, body: unknown, apiKey?: string): Promise<{ status: number; text: string }> {
  const [host, port] = address.split(':');
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host, port: Number(port), path, method: 'POST', ca, headers: { 'content-type': 'application/json', ...(apiKey === undefined ? {} : { authorization: `Bearer ${apiKey}` }) } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

describe('HTTP API on a secure cluster', () => {
  test('HTTPS with the coordinator certificate; 401 without the API key, 200 with it', async (t) => {
    const cluster = await startCluster(t, MODEL, 2, ['--secure']);
    const security = cluster.file.security!;
    const ca = readFileSync(security.ca);
    const address = cluster.file.http!;
    const body = { prompt: 'Hello', max_tokens: 4, temperature: 0 };
    const refused = await postTls(address, ca, '/v1/completions', body);
    assert.equal(refused.status, 401, refused.text);
    assert.equal(JSON.parse(refused.text).error.type, 'authentication_error');
    const ok = await postTls(address, ca, '/v1/completions', body, security.apiKey);
    assert.equal(ok.status, 200, ok.text);
    assert.equal(JSON.parse(ok.text).usage.completion_tokens, 4);
    // Plain HTTP is not served on a secure cluster's port.
    const plain = await fetch(`http://${address}/v1/models`).then((r) => r.status, () => 'refused');
    assert.notEqual(plain, 200);
  });
});
