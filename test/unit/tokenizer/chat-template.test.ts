/**
 * Chat templates: the two real Mistral templates in test/fixtures/chat-templates render every
 * conversation byte for byte as Python's jinja2 does under transformers (or fail with the
 * template's own message), and the built-in [INST] fallback lays out system and multi-turn chats.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { CheckpointError, InvalidArgumentError } from '../../../common/errors';
import { fallbackChatTemplate, joinLineContinuations, parseChatTemplate, strftime, type ChatMessage } from '../../../common/tokenizer/chat-template';
import { repoRoot } from '../../support/checkpoints';

interface ExpectedRender {
  readonly messages: ChatMessage[];
  readonly text?: string;
  readonly error?: string;
}
interface Expected {
  readonly bos_token: string;
  readonly eos_token: string;
  readonly strftime_now: string;
  readonly renders: Record<string, Record<string, ExpectedRender>>;
}

const dir = join(repoRoot(), 'test', 'fixtures', 'chat-templates');
const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as Expected;
const TOKENS = { bosToken: expected.bos_token, eosToken: expected.eos_token };
/** The fixture's fixed date, as local midnight (strftime_now formats local time). */
const [year, month, day] = expected.strftime_now.split('-').map(Number);
const FIXED_NOW = (): Date => new Date(year, month - 1, day);

describe('chat templates: hub templates as transformers renders them', () => {
  for (const [file, cases] of Object.entries(expected.renders)) {
    const template = parseChatTemplate(readFileSync(join(dir, file), 'utf8'), file, TOKENS, { now: FIXED_NOW });
    for (const [name, c] of Object.entries(cases)) {
      test(`${file} / ${name}`, () => {
        if (c.text !== undefined) {
          assert.equal(template.render(c.messages, { addGenerationPrompt: true }), c.text);
        } else {
          assert.throws(
            () => template.render(c.messages, { addGenerationPrompt: true }),
            (err: unknown) => err instanceof InvalidArgumentError && err.message === c.error,
          );
        }
      });
    }
  }

  test('the fixture set covers both templates, an error and the jinja2 quirks', () => {
    assert.equal(Object.keys(expected.renders).length, 2);
    const all = Object.values(expected.renders).flatMap((cases) => Object.values(cases));
    assert.equal(all.length, 12);
    assert.ok(all.some((c) => c.error !== undefined));
    // Line continuation inside a string literal, and the for-loop `set` that does not leak.
    assert.ok(all.some((c) => c.text?.includes('Paris.Your knowledge')));
    assert.ok(expected.renders['mistral-small-3.1-instruct-2503.jinja']['bad-order'].text !== undefined);
  });

  test('a backslash-newline joins lines only inside string literals of tags', () => {
    assert.equal(joinLineContinuations('a\\\nb{{ "x\\\ny" }}{# c\\\nd #}'), 'a\\\nb{{ "xy" }}{# c\\\nd #}');
    assert.equal(joinLineContinuations("{% set s = 'q\\'\\\nr' %}"), "{% set s = 'q\\'r' %}");
  });

  test('strftime_now follows Python strftime', () => {
    const d = new Date(2026, 11, 7, 9, 5, 3);
    assert.equal(strftime(d, '%Y-%m-%d %H:%M:%S'), '2026-12-07 09:05:03');
    assert.equal(strftime(d, '%d %B %Y, %a %b'), '07 December 2026, Mon Dec');
  });

  test('a template that does not parse is a CheckpointError naming its file', () => {
    assert.throws(
      () => parseChatTemplate('{% for m in messages %}{{ m.content }', '/models/x/tokenizer_config.json', TOKENS),
      (err: unknown) => err instanceof CheckpointError && err.message.includes('/models/x/tokenizer_config.json') && err.message.includes('chat_template'),
    );
  });

  test('messages without a role or with non-string content are refused', () => {
    const t = fallbackChatTemplate(TOKENS);
    assert.throws(() => t.render([], { addGenerationPrompt: true }), InvalidArgumentError);
    assert.throws(() => t.render([{ role: '', content: 'x' }], { addGenerationPrompt: true }), InvalidArgumentError);
    assert.throws(() => t.render([{ role: 'user', content: 3 as unknown as string }], { addGenerationPrompt: true }), InvalidArgumentError);
  });
});

describe('chat templates: the built-in [INST] fallback', () => {
  const t = fallbackChatTemplate(TOKENS);
  const render = (messages: ChatMessage[]): string => t.render(messages, { addGenerationPrompt: true });

  test('one user turn is today\'s format', () => {
    assert.equal(render([{ role: 'user', content: 'Hi' }]), '<s>[INST] Hi [/INST]');
  });

  test('multi-turn: replies end in </s>, turns follow', () => {
    assert.equal(
      render([
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: 'Hello!' },
        { role: 'user', content: 'Joke?' },
      ]),
      '<s>[INST] Hi [/INST] Hello!</s>[INST] Joke? [/INST]',
    );
  });

  test('a system message goes in front of the first user turn only', () => {
    assert.equal(
      render([
        { role: 'system', content: 'Be terse.' },
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: 'Yo' },
        { role: 'user', content: 'Bye' },
      ]),
      '<s>[INST] Be terse.\n\nHi [/INST] Yo</s>[INST] Bye [/INST]',
    );
  });

  test('roles out of order are an InvalidArgumentError', () => {
    assert.throws(() => render([{ role: 'assistant', content: 'x' }]), /roles must alternate/);
    assert.throws(() => render([{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }]), InvalidArgumentError);
  });
});
