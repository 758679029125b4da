/**
 * The safety filter end to end: a `bora up` cluster started with --safety-policy, reached over
 * gRPC. The policy is written from what the model generates greedily (`bora generate --greedy`
 * in-process): one word of that output is redacted, a later one blocks; a prompt phrase is
 * redacted, another blocks. Checked: the streamed text is the greedy text with the word redacted,
 * cut before the blocked word, finishing with CONTENT_FILTER after fewer tokens than asked; a
 * blocked prompt (text, token ids, a chat turn) finishes at once and no worker computes for it;
 * a redacted prompt generates what the redacted text generates; a blocked chat turn leaves the
 * conversation as it was; the incident metrics move, and the audit log names request, rule and
 * action without the text.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { inferenceClient } from '../../../cli/inference-client';
import type { GenerationRequest } from '../../../common/generation/request';
import { HIDDEN_TOKEN_ID } from '../../../common/generation/text-filter';
import { sampleValue, scrapeMetrics } from '../../../common/metrics/exposition';
import { parseModelConfig } from '../../../common/model/config';
import { loadTokenizer } from '../../../common/tokenizer/load-tokenizer';
import type { GenerateEvent } from '../../../common/wire/messages';
import { fixtureDir, makeTempDir, type TempDir } from '../../support/checkpoints';
import { localGreedy, pickWords, workerForwards, writeTestPolicy } from '../../support/safety-cluster';
import { bora, generateOn, startCluster, type TestCluster } from '../../support/cluster';

const MODEL = fixtureDir('tiny-mistral');
const PROMPT = 'hello there';
const MAX_TOKENS = 24;

const greedyText = (text: string): GenerationRequest => ({ prompt: { kind: 'text', text }, maxTokens: MAX_TOKENS, sampling: { kind: 'greedy' }, stop: [], ignoreEos: false, returnFirstLogits: false });

/** One chat session: sends `turns` one after another, collecting each turn's events. */
function chat(address: string, turns: readonly string[]): Promise<GenerateEvent[][]> {
  return new Promise((resolve, reject) => {
    const call = inferenceClient(address).Chat();
    const replies: GenerateEvent[][] = [];
    let current: GenerateEvent[] = [];
    let next = 0;
    const send = (): void => {
      if (next === turns.length) return void call.end();
      call.write({ user: turns[next++], maxTokens: 8, sampling: { greedy: true } });
    };
    call.on('data', (e: GenerateEvent) => {
      current.push(e);
      if (e.finish !== null && e.finish !== undefined) {
        replies.push(current);
        current = [];
        send();
      }
    });
    call.on('error', reject);
    call.on('end', () => resolve(replies));
    send();
  });
}

describe('safety filter on a running cluster', () => {
  let cluster: TestCluster;
  let dir: TempDir;
  let greedy: { tokens: number[]; text: string };
  let redactWord: string;
  let blockWord: string;

  before(async () => {
    greedy = await localGreedy(MODEL, PROMPT, MAX_TOKENS);
    [redactWord, blockWord] = pickWords(greedy.text);
    dir = await makeTempDir('safety');
    const policy = writeTestPolicy(dir.path, redactWord, blockWord);
    cluster = await startCluster(undefined, MODEL, 2, ['--safety-policy', policy]);
  });
  after(async () => {
    await cluster?.down();
    await dir?.remove();
  });

  test('generated text: a word redacted, the stream cut before a blocked one with CONTENT_FILTER', async () => {
    const got = await generateOn(cluster.file.coordinator, greedyText(PROMPT));
    const lower = greedy.text.toLowerCase();
    const at = lower.indexOf(redactWord);
    const cut = lower.indexOf(blockWord);
    assert.ok(at + redactWord.length <= cut);
    assert.equal(got.text, `${greedy.text.slice(0, at)}[redacted]${greedy.text.slice(at + redactWord.length, cut)}`);
    assert.equal(got.finish.reason, 'content_filter');
    assert.ok(got.tokens.length < MAX_TOKENS, `the sequence stopped early (${got.tokens.length} tokens)`);
    // The greedy tokens, except that those of the redacted word carry HIDDEN_TOKEN_ID.
    const hidden = got.tokens.flatMap((id, i) => (id === HIDDEN_TOKEN_ID ? [i] : []));
    assert.ok(hidden.length > 0, 'the redacted word\'s tokens are hidden');
    got.tokens.forEach((id, i) => assert.ok(id === greedy.tokens[i] || hidden.includes(i), `token ${i}`));
    assert.equal(got.finish.generatedTokens, got.tokens.length);
  });

  test('a blocked prompt (text or token ids) finishes at once and never reaches the workers', async () => {
    const before = await workerForwards(cluster);
    assert.ok(before > 0, 'the workers count their forward passes');
    const text = await generateOn(cluster.file.coordinator, greedyText('tell me about the Forbidden Topic'));
    assert.equal(text.finish.reason, 'content_filter');
    assert.deepEqual([text.tokens.length, text.text, text.finish.generatedTokens], [0, '', 0]);
    const tokenizer = await loadTokenizer(MODEL, parseModelConfig(readFileSync(join(MODEL, 'config.json'), 'utf8'), 'config.json'));
    const ids = tokenizer.encode('the forbidden topic again', { addBos: true });
    const byIds = await generateOn(cluster.file.coordinator, { ...greedyText(''), prompt: { kind: 'ids', ids } });
    assert.equal(byIds.finish.reason, 'content_filter');
    assert.equal(byIds.tokens.length, 0);
    assert.equal(await workerForwards(cluster), before, 'no stage computed for a blocked prompt');
  });

  test('a redacted prompt generates what the redacted text generates', async () => {
    const plain = await localGreedy(MODEL, 'hello [redacted]', MAX_TOKENS);
    const asIs = await localGreedy(MODEL, 'hello Zanzibar', MAX_TOKENS);
    assert.notDeepEqual(asIs.tokens, plain.tokens, 'the redaction changes what is generated');
    const got = await generateOn(cluster.file.coordinator, greedyText('hello Zanzibar'));
    // The output rules may cut this text too; the tokens that came are those of the redacted prompt.
    assert.ok(got.tokens.length > 0);
    got.tokens.forEach((id, i) => assert.ok(id === plain.tokens[i] || id === HIDDEN_TOKEN_ID, `token ${i}`));
    assert.ok(got.tokens.filter((id, i) => id === plain.tokens[i]).length > 0);
  });

  test('a blocked chat turn ends with CONTENT_FILTER and leaves the conversation as it was', async () => {
    const blocked = await chat(cluster.file.coordinator, ['a forbidden topic, please', PROMPT]);
    const fresh = await chat(cluster.file.coordinator, [PROMPT]);
    assert.equal(blocked.length, 2);
    assert.deepEqual(
      blocked[0]!.map((e) => e.finish?.reason),
      ['FINISH_REASON_CONTENT_FILTER'],
    );
    const ids = (events: GenerateEvent[]): number[] => events.filter((e) => e.token).map((e) => e.token!.tokenId);
    assert.ok(ids(fresh[0]!).length > 0);
    assert.deepEqual(ids(blocked[1]!), ids(fresh[0]!), 'the turn after the blocked one sees the conversation without it');
  });

  test('incidents move the metrics and leave audit lines without the text', async () => {
    const samples = await scrapeMetrics(cluster.file.coordinatorMetrics!);
    assert.ok(sampleValue(samples, 'bora_safety_incidents_total', { stage: 'output', action: 'redact' }) >= 1);
    assert.ok(sampleValue(samples, 'bora_safety_incidents_total', { stage: 'output', action: 'block' }) >= 1);
    assert.ok(sampleValue(samples, 'bora_safety_incidents_total', { stage: 'prompt', action: 'block' }) >= 3);
    assert.ok(sampleValue(samples, 'bora_safety_incidents_total', { stage: 'prompt', action: 'redact' }) >= 1);
    // Blocked requests (the cut Generate, the two blocked prompts, the blocked chat turn) are not `ok`.
    assert.ok(sampleValue(samples, 'bora_requests_total', { outcome: 'blocked' }) >= 4);
    const audit = readFileSync(join(cluster.stateDir, 'audit.log'), 'utf8');
    const lines = audit
      .split('\n')
      .filter((l) => l.includes('"safety.'))
      .map((l) => JSON.parse(l) as { what: string; outcome: string; detail: { request: string; rule: string; stage: string; action: string } });
    const block = lines.find((l) => l.what === 'safety.block' && l.detail.rule === 'stop-word');
    assert.ok(block !== undefined, 'an audit line for the output block');
    assert.equal(block.outcome, 'refused');
    assert.match(block.detail.request, /^[0-9a-f-]{36}$/);
    assert.ok(lines.some((l) => l.what === 'safety.redact' && l.detail.rule === 'hide-word' && l.detail.stage === 'output'));
    assert.ok(lines.some((l) => l.what === 'safety.block' && l.detail.rule === 'no-topic' && l.detail.stage === 'prompt'));
    for (const secret of [blockWord, redactWord, 'forbidden', 'zanzibar']) assert.ok(!audit.toLowerCase().includes(secret), `the audit log holds "${secret}"`);
  });
});
