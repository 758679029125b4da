/**
 * gRPC parity through a real cluster (`bora up`, one worker): the bidi Chat lays each turn out
 * with the model directory's chat template (a hub tokenizer.json and Mistral Nemo's template, with
 * a system message) and generates exactly what Generate does on the same rendered prompt; the
 * client-streaming SubmitPrompt uploads text and id pieces whose handle Generate then serves
 * as the same ids; `bora chat` prints the same replies, one line per turn; bad turns get
 * INVALID_ARGUMENT.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ChatSession, submitPrompt } from '../../../cli/chat-session';
import { connect, inferenceClient } from '../../../cli/inference-client';
import { BoraError } from '../../../common/errors';
import type { GenerationEvent } from '../../../common/generation/request';
import { CONFIG_FILE, SINGLE_FILE } from '../../../common/model/checkpoint';
import { parseModelConfig } from '../../../common/model/config';
import type { ChatMessage, ChatTemplate } from '../../../common/tokenizer/chat-template';
import { loadModelText } from '../../../common/tokenizer/load-tokenizer';
import type { Tokenizer } from '../../../common/tokenizer/tokenizer';
import { eventFromWire } from '../../../common/wire/generate-codec';
import { fromServiceError } from '../../../common/wire/grpc-status';
import type { GenerateEvent } from '../../../common/wire/messages';
import { fixtureDir, makeTempDir, repoRoot, type TempDir } from '../../support/checkpoints';
import { boraBin, generateOn, startCluster, type TestCluster } from '../../support/cluster';
import { writeHubTokenizer } from '../../support/hub-tokenizers';

const MAX_TOKENS = 12;
const SYSTEM = 'Answer in French.';
const TURNS = ['What is the capital of France?', 'And of Italy?'];

describe('Chat and SubmitPrompt through a cluster', () => {
  let modelDir: TempDir;
  let cluster: TestCluster;
  let tokenizer: Tokenizer;
  let template: ChatTemplate;

  before(async () => {
    modelDir = await makeTempDir('chat-model');
    for (const file of [CONFIG_FILE, SINGLE_FILE]) await copyFile(join(fixtureDir('tiny-mistral'), file), join(modelDir.path, file));
    const nemo = await readFile(join(repoRoot(), 'test', 'fixtures', 'chat-templates', 'mistral-nemo-instruct-2407.jinja'), 'utf8');
    await writeHubTokenizer(modelDir.path, 'sp-v1', { chatTemplate: nemo });
    const config = parseModelConfig(await readFile(join(modelDir.path, CONFIG_FILE), 'utf8'), CONFIG_FILE);
    ({ tokenizer, chatTemplate: template } = await loadModelText(modelDir.path, config));
    cluster = await startCluster(undefined, modelDir.path, 1);
  });
  after(async () => {
    await cluster?.down();
    await modelDir?.remove();
  });

  /** What Generate gives for the rendered conversation: the expected reply of a chat turn. */
  async function expectedReply(messages: ChatMessage[]): Promise<{ ids: number[]; tokens: number[]; text: string }> {
    const ids = tokenizer.encode(template.render(messages, { addGenerationPrompt: true }), { addBos: false });
    const got = await generateOn(cluster.file.coordinator, { prompt: { kind: 'ids', ids }, maxTokens: MAX_TOKENS, sampling: { kind: 'greedy' }, stop: [], ignoreEos: false, returnFirstLogits: false });
    return { ids, tokens: got.tokens, text: got.text };
  }

  async function expectedConversation(): Promise<{ tokens: number[]; text: string; promptTokens: number }[]> {
    const messages: ChatMessage[] = [{ role: 'system', content: SYSTEM }];
    const out = [];
    for (const user of TURNS) {
      messages.push({ role: 'user', content: user });
      const reply = await expectedReply(messages);
      out.push({ tokens: reply.tokens, text: reply.text, promptTokens: reply.ids.length });
      const stops = new Set(tokenizer.stopIds);
      messages.push({ role: 'assistant', content: tokenizer.decode(reply.tokens.filter((id) => !stops.has(id))) });
    }
    return out;
  }

  test('each Chat turn is the template-rendered conversation, generated as Generate does', async () => {
    const expected = await expectedConversation();
    // The template put the system message into the (last) user turn: the render changes.
    assert.ok(template.render([{ role: 'system', content: SYSTEM }, { role: 'user', content: 'x' }], { addGenerationPrompt: true }).includes(`[INST]${SYSTEM}\n\nx[/INST]`));
    const session = await ChatSession.open(cluster.file.coordinator, 120_000);
    try {
      for (const [i, user] of TURNS.entries()) {
        const tokens: number[] = [];
        let text = '';
        const finish = await session.turn(user, { maxTokens: MAX_TOKENS, sampling: { kind: 'greedy' }, system: i === 0 ? SYSTEM : undefined }, (e: GenerationEvent) => {
          if (e.type === 'token') tokens.push(e.tokenId);
          text += e.text;
        });
        assert.ok(tokens.length > 0);
        assert.deepEqual(tokens, expected[i].tokens, `turn ${i}`);
        assert.equal(text, expected[i].text, `turn ${i}`);
        assert.equal(finish.promptTokens, expected[i].promptTokens, `turn ${i}`);
      }
    } finally {
      session.close();
    }
  });

  test('a system message on a later turn is INVALID_ARGUMENT, and the call ends', async () => {
    const session = await ChatSession.open(cluster.file.coordinator, 60_000);
    try {
      await session.turn('Hi', { maxTokens: 2, sampling: { kind: 'greedy' } }, () => undefined);
      const err = await session.turn('Hi', { maxTokens: 2, sampling: { kind: 'greedy' }, system: 'late' }, () => undefined).then(
        () => assert.fail('accepted'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof BoraError);
      assert.equal(err.code, 'INVALID_ARGUMENT');
      assert.match(err.message, /only the first chat turn/);
    } finally {
      session.close();
    }
  });

  test('bora chat prints each reply as a line, the same text as the Chat RPC', async () => {
    const expected = await expectedConversation();
    const stdout = await new Promise<string>((resolve, reject) => {
      const child = execFile(
        process.execPath,
        [boraBin(), 'chat', '--coordinator', cluster.file.coordinator, '--system', SYSTEM, '--greedy', '--max-tokens', String(MAX_TOKENS)],
        { timeout: 120_000 },
        (err, out, errOut) => (err ? reject(new Error(`${err.message}\n${errOut}`)) : resolve(out)),
      );
      child.stdin?.end(`${TURNS.join('\n')}\n\n`);
    });
    assert.equal(stdout, expected.map((r) => `${r.text}\n`).join(''));
  });

  test('SubmitPrompt uploads text and id pieces; Generate on the handle equals Generate on the ids', async () => {
    const head = 'The capital of France is';
    const tail = ' Paris, and';
    const extra = [415, 5565];
    const upload = await submitPrompt(cluster.file.coordinator, [{ text: head }, { tokenIds: { ids: extra } }, { text: tail }], 60_000);
    const ids = [...tokenizer.encode(head), ...extra, ...tokenizer.encode(tail, { addBos: false })];
    assert.equal(upload.promptTokens, ids.length);
    const direct = await generateOn(cluster.file.coordinator, { prompt: { kind: 'ids', ids }, maxTokens: 8, sampling: { kind: 'greedy' }, stop: [], ignoreEos: true, returnFirstLogits: false });
    const viaHandle = await generateByHandle(cluster.file.coordinator, upload.handle, 8);
    assert.equal(viaHandle.length, 8);
    assert.deepEqual(viaHandle, direct.tokens);
  });

  test('an empty upload, or an unknown handle, is refused with INVALID_ARGUMENT / NOT_FOUND', async () => {
    const empty = await submitPrompt(cluster.file.coordinator, [], 30_000).then(
      () => assert.fail('accepted'),
      (e: unknown) => e,
    );
    assert.ok(empty instanceof BoraError);
    assert.equal(empty.code, 'INVALID_ARGUMENT');
    const unknown = await generateByHandle(cluster.file.coordinator, 'no-such-handle', 2).then(
      () => assert.fail('accepted'),
      (e: unknown) => e,
    );
    assert.ok(unknown instanceof BoraError);
    assert.ok(unknown.code === 'NOT_FOUND' || unknown.code === 'INVALID_ARGUMENT', unknown.code);
  });
});

/** Generate with a prompt_handle (greedy, EOS ignored); resolves with the generated ids. */
async function generateByHandle(address: string, handle: string, maxTokens: number): Promise<number[]> {
  const client = inferenceClient(address);
  try {
    await connect(client, address);
    return await new Promise<number[]>((resolve, reject) => {
      const tokens: number[] = [];
      const call = client.generate(
        { model: '', promptHandle: handle, prompt: 'promptHandle', maxTokens, sampling: { greedy: true }, stop: [], ignoreEos: true, returnFirstLogits: false },
        { deadline: Date.now() + 60_000 },
      );
      call.on('data', (wire: GenerateEvent) => {
        const e = eventFromWire(wire);
        if (e.type === 'token') tokens.push(e.tokenId);
      });
      call.on('error', (err) => reject(fromServiceError(err as Parameters<typeof fromServiceError>[0])));
      call.on('end', () => resolve(tokens));
    });
  } finally {
    client.close();
  }
}
