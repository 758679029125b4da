/**
 * The Chat handler with a chat template that refuses a conversation: the template's own
 * raise_exception message comes back as INVALID_ARGUMENT, word for word, before anything reaches
 * the scheduler (this harness's refuses every request), and the server goes on serving.
 */
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { parseChatTemplate } from '../../../common/tokenizer/chat-template';
import type { InferenceClient } from '../../../common/wire/proto';
import { startInferenceServer, type InferenceServerHarness } from '../../support/inference-server';

const TEMPLATE =
  "{{ bos_token }}{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('System messages are not supported by this model!') }}{% endif %}" +
  "{% if m.content == 'boom' %}{{ raise_exception('no booms: ' + m.content) }}{% endif %}[INST]{{ m.content }}[/INST]{% endfor %}";

function chatError(client: InferenceClient, turn: { user: string; system?: string }): Promise<grpc.ServiceError | undefined> {
  return new Promise((resolve) => {
    const call = client.chat();
    call.on('data', () => undefined);
    call.on('error', (err: grpc.ServiceError) => resolve(err));
    call.on('end', () => resolve(undefined));
    call.write(turn);
  });
}

describe('Chat: the chat template\'s own errors', () => {
  let h: InferenceServerHarness;
  let client: InferenceClient;

  before(async () => {
    const chatTemplate = parseChatTemplate(TEMPLATE, 'test-template', { bosToken: '<s>', eosToken: '</s>' });
    h = await startInferenceServer({ maxPromptBytes: 1024, deps: { chatTemplate } });
    client = h.client();
  });
  after(async () => {
    await h.close();
  });

  test('raise_exception in the template is INVALID_ARGUMENT with the template\'s message', async () => {
    const err = await chatError(client, { user: 'boom' });
    assert.equal(err?.code, grpc.status.INVALID_ARGUMENT);
    assert.equal(err?.details, 'no booms: boom');
  });

  test('a system message the template refuses, likewise', async () => {
    const err = await chatError(client, { user: 'hi', system: 'be nice' });
    assert.equal(err?.code, grpc.status.INVALID_ARGUMENT);
    assert.equal(err?.details, 'System messages are not supported by this model!');
  });

  test('a turn the template accepts gets past it (to this harness\'s refusing scheduler)', async () => {
    const err = await chatError(client, { user: 'fine' });
    assert.notEqual(err?.code, grpc.status.INVALID_ARGUMENT, err?.details);
  });
});
