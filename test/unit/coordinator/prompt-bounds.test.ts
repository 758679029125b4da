/**
 * Prompt text is bounded in bytes before it is tokenized, on every path that tokenizes
 * (Generate, SubmitPrompt, Chat), and tokenizing runs in the CPU pool: a prompt over the limit is
 * refused at once with INVALID_ARGUMENT naming the limit, and while a long but allowed prompt is
 * tokenized the server's event loop keeps ticking.
 */
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { InvalidArgumentError } from '../../../common/errors';
import { Generator } from '../../../common/generation/generator';
import type { Scheduler } from '../../../common/generation/scheduler';
import { DEFAULT_MAX_PROMPT_BYTES, checkPromptBytes } from '../../../common/generation/prompt-limits';
import type { InferenceClient } from '../../../common/wire/proto';
import { startInferenceServer, type InferenceServerHarness } from '../../support/inference-server';

const LIMIT_BYTES = 256 * 1024;
/** Tokenizing this much text takes about a second here (the tokenizer is far from linear). */
const LONG_PROMPT_BYTES = 80 * 1024;
const LOOP_DELAY_BOUND_MS = 250;
const MAX_PROMPT_TOKENS = 50_000;

const text = (bytes: number): string => 'The quick brown fox jumps over the lazy dog. '.repeat(Math.ceil(bytes / 45)).slice(0, bytes);

function isLimitError(err: unknown): boolean {
  const e = err as grpc.ServiceError;
  return e.code === grpc.status.INVALID_ARGUMENT && new RegExp(`the limit is ${LIMIT_BYTES} bytes of UTF-8`).test(e.details);
}

function submit(client: InferenceClient, pieces: object[]): Promise<{ promptTokens: number }> {
  return new Promise((resolve, reject) => {
    const call = client.submitPrompt((err, reply) => (err ? reject(err) : resolve(reply!)));
    for (const p of pieces) call.write(p);
    call.end();
  });
}

describe('checkPromptBytes', () => {
  test('counts UTF-8 bytes, not characters', () => {
    checkPromptBytes('é'.repeat(50), 100);
    assert.throws(() => checkPromptBytes('é'.repeat(51), 100), (e: unknown) => e instanceof InvalidArgumentError && /is 102 bytes; the limit is 100 bytes/.test(e.message));
    assert.throws(() => checkPromptBytes('x'.repeat(101), 100), /is at least 101 bytes; the limit is 100/);
    checkPromptBytes('x'.repeat(100), 100);
  });
});

describe('Generator: prompt bytes before tokenizing', () => {
  test('a 10 MB prompt is refused in well under a second, without tokenizing it', async () => {
    let encoded = 0;
    const g = new Generator({} as Scheduler, { encode: () => [] } as never, { vocabSize: 10, maxPositionEmbeddings: 100 } as never, {
      encode: () => {
        encoded++;
        return [1];
      },
    });
    const start = performance.now();
    await assert.rejects(g.promptIds({ kind: 'text', text: 'x'.repeat(10_000_000) }), (e: unknown) => e instanceof InvalidArgumentError && new RegExp(`the limit is ${DEFAULT_MAX_PROMPT_BYTES} bytes`).test(e.message));
    assert.ok(performance.now() - start < 500);
    assert.equal(encoded, 0);
  });
});

describe('the client API bounds prompt text before tokenizing', () => {
  let h: InferenceServerHarness;
  let client: InferenceClient;
  before(async () => {
    // Past the fixture's 4096-token context, so that long prompts reach the tokenizer's cost.
    h = await startInferenceServer({ maxPromptBytes: LIMIT_BYTES, deps: { maxPromptTokens: MAX_PROMPT_TOKENS } });
    client = h.client();
  });
  after(async () => {
    await h.close();
  });

  test('Generate: text over the limit is INVALID_ARGUMENT at once', async () => {
    const start = performance.now();
    const err = await new Promise<unknown>((resolve) => {
      const call = client.generate({ text: text(4 * LIMIT_BYTES) }, { deadline: Date.now() + 10_000 });
      call.on('data', () => undefined);
      call.on('error', resolve);
      call.on('end', () => resolve(undefined));
    });
    assert.ok(isLimitError(err), String(err));
    assert.ok(performance.now() - start < 2000, `took ${performance.now() - start} ms`);
  });

  test('SubmitPrompt: the limit covers all pieces together', async () => {
    await assert.rejects(submit(client, [{ text: text(100) }, { text: text(LIMIT_BYTES - 99) }]), isLimitError);
    const ok = await submit(client, [{ text: 'Hello' }, { tokenIds: { ids: [5, 6] } }, { text: ' world' }]);
    assert.equal(ok.promptTokens, h.tokenizer.encode('Hello').length + 2 + h.tokenizer.encode(' world', { addBos: false }).length);
  });

  test('SubmitPrompt: token ids past the context limit are refused', async () => {
    const ids = Array.from({ length: MAX_PROMPT_TOKENS / 2 + 1 }, () => 5);
    await assert.rejects(submit(client, [{ tokenIds: { ids } }, { tokenIds: { ids } }]), (e: grpc.ServiceError) => e.code === grpc.status.INVALID_ARGUMENT && e.details === `the uploaded prompt is over ${MAX_PROMPT_TOKENS} tokens, the context limit`);
  });

  test('Chat: a message over the limit is INVALID_ARGUMENT', async () => {
    const err = await new Promise<unknown>((resolve) => {
      const call = client.chat();
      call.on('data', () => undefined);
      call.on('error', resolve);
      call.on('end', () => resolve(undefined));
      call.write({ user: text(LIMIT_BYTES + 1) });
    });
    assert.ok(isLimitError(err), String(err));
  });

  test('while a long allowed prompt is tokenized, the event loop stays responsive', async (t) => {
    // The longest gap between 5 ms ticks, the last one up to the reply included (a loop blocked
    // for the whole call would otherwise record no tick at all).
    let last = performance.now();
    let maxDelayMs = 0;
    const timer = setInterval(() => {
      maxDelayMs = Math.max(maxDelayMs, performance.now() - last);
      last = performance.now();
    }, 5);
    const start = performance.now();
    const reply = await submit(client, [{ text: text(LONG_PROMPT_BYTES) }]);
    const tookMs = performance.now() - start;
    clearInterval(timer);
    maxDelayMs = Math.max(maxDelayMs, performance.now() - last);
    t.diagnostic(`${reply.promptTokens} tokens in ${tookMs.toFixed(0)} ms; longest event-loop delay ${maxDelayMs.toFixed(1)} ms`);
    assert.ok(reply.promptTokens > 10_000);
    // The check means something only if tokenizing on the loop would have blown the bound.
    assert.ok(tookMs > 2 * LOOP_DELAY_BOUND_MS, `tokenizing took only ${tookMs} ms`);
    assert.ok(maxDelayMs < LOOP_DELAY_BOUND_MS, `event loop blocked for ${maxDelayMs} ms`);
  });
});
