/**
 * `bora up --model FILE.gguf` with a chat template in the file's tokenizer.chat_template (a real
 * Mistral template from test/fixtures/chat-templates): /v1/chat/completions and gRPC Chat both
 * lay the conversation out with it, system message included, so their greedy output is what
 * gRPC Generate gives for the template's render tokenized (and not what the built-in [INST]
 * format would give).
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import OpenAI from 'openai';
import { inferenceClient } from '../../../cli/inference-client';
import { loadModelChatTemplate, loadModelTokenizer } from '../../../common/model/open-model';
import { fallbackChatTemplate } from '../../../common/tokenizer/chat-template';
import type { GenerateEvent } from '../../../common/wire/messages';
import { repoRoot } from '../../support/checkpoints';
import { generateOn, startCluster } from '../../support/cluster';
import { fixtureGguf } from '../../support/gguf';

const MAX_TOKENS = 12;

/** One gRPC Chat turn with a system message: its token ids. */
function chatTurn(address: string, system: string, user: string): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const call = inferenceClient(address).Chat();
    const ids: number[] = [];
    call.on('data', (e: GenerateEvent) => {
      if (e.token) ids.push(e.token.tokenId);
      if (e.finish) call.end();
    });
    call.on('error', reject);
    call.on('end', () => resolve(ids));
    call.write({ system, user, maxTokens: MAX_TOKENS, sampling: { greedy: true } });
  });
}

test('a GGUF file\'s tokenizer.chat_template lays out chats for /v1/chat/completions and gRPC Chat', async (t) => {
  const source = await readFile(join(repoRoot(), 'test', 'fixtures', 'chat-templates', 'mistral-nemo-instruct-2407.jinja'), 'utf8');
  const gguf = await fixtureGguf(t, 'tiny-mistral', 'BF16', { chatTemplate: source });
  const cluster = await startCluster(t, gguf, 2);
  const system = 'You are terse.';
  const user = 'Name a colour.';
  const messages = [
    { role: 'system' as const, content: system },
    { role: 'user' as const, content: user },
  ];
  const tokenizer = await loadModelTokenizer(gguf, { bosTokenId: 1, eosTokenId: 2 });
  const rendered = (await loadModelChatTemplate(gguf)).render(messages, { addGenerationPrompt: true });
  assert.equal(rendered, '<s>[INST]You are terse.\n\nName a colour.[/INST]', 'the Nemo template\'s layout');
  const ids = tokenizer.encode(rendered, { addBos: false });
  const fallbackIds = tokenizer.encode(fallbackChatTemplate({ bosToken: '<s>', eosToken: '</s>' }).render(messages, { addGenerationPrompt: true }), { addBos: false });
  assert.notEqual(ids.length, fallbackIds.length, 'the built-in format would give another prompt');

  const reference = await generateOn(cluster.file.coordinator, { prompt: { kind: 'ids', ids }, maxTokens: MAX_TOKENS, sampling: { kind: 'greedy' }, stop: [], ignoreEos: false, returnFirstLogits: false });
  assert.ok(reference.tokens.length > 0);

  const openai = new OpenAI({ baseURL: `http://${cluster.file.http}/v1`, apiKey: 'not-checked-on-an-insecure-cluster', maxRetries: 0, timeout: 120_000 });
  const model = (await openai.models.list()).data[0]!.id;
  const c = await openai.chat.completions.create({ model, messages, max_tokens: MAX_TOKENS, temperature: 0 });
  assert.equal(c.usage?.prompt_tokens, ids.length, 'the prompt is the template\'s render');
  assert.equal(c.choices[0].message.content, reference.text);
  assert.equal(c.usage?.completion_tokens, reference.tokens.length);

  assert.deepEqual(await chatTurn(cluster.file.coordinator, system, user), reference.tokens, 'gRPC Chat renders the same template');
});
