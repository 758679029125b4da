/**
 * A GGUF file's chat template: tokenizer.chat_template is what Chat and /v1/chat/completions
 * render (loadModelChatTemplate), as a directory's tokenizer_config.json is. A file carrying one
 * of the real Mistral templates (test/fixtures/chat-templates) renders every fixture conversation
 * byte for byte as Python's jinja2 does, its bos_token / eos_token being the vocabulary's BOS and
 * EOS pieces; the writer copies a directory's own template into the file; the template's
 * end-of-turn token is a stop id; a file without one gets
 * the built-in [INST] format; a template that does not parse is an error naming the file.
 */
import assert from 'node:assert/strict';
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { CheckpointError, InvalidArgumentError } from '../../../../common/errors';
import { GgufMetadata, readGgufHeader } from '../../../../common/model/gguf/gguf-header';
import { loadModelChatTemplate, loadModelTokenizer } from '../../../../common/model/open-model';
import { FALLBACK_TEMPLATE_SOURCE, fallbackChatTemplate, type ChatMessage } from '../../../../common/tokenizer/chat-template';
import { CHECKPOINT_FILES } from '../../../support/gguf-tokenizers';
import { hubTokenizerJson } from '../../../support/hub-tokenizers';
import { fixtureDir, repoRoot, tempDir } from '../../../support/checkpoints';
import { fixtureGguf } from '../../../support/gguf';

interface ExpectedRender {
  readonly messages: ChatMessage[];
  readonly text?: string;
  readonly error?: string;
}
const TEMPLATES = join(repoRoot(), 'test', 'fixtures', 'chat-templates');
const NEMO = 'mistral-nemo-instruct-2407.jinja';

async function expectedRenders(): Promise<{ renders: Record<string, Record<string, ExpectedRender>>; strftime_now: string }> {
  return JSON.parse(await readFile(join(TEMPLATES, 'expected.json'), 'utf8'));
}

describe('GGUF chat templates', () => {
  for (const file of [NEMO, 'mistral-small-3.1-instruct-2503.jinja']) {
    test(`tokenizer.chat_template (${file}) renders every fixture conversation as jinja2 does`, async (t) => {
      const source = await readFile(join(TEMPLATES, file), 'utf8');
      const gguf = await fixtureGguf(t, 'tiny-mistral', 'Q8_0', { chatTemplate: source });
      const header = await readGgufHeader(gguf);
      assert.equal(new GgufMetadata(gguf, header.metadata).string('tokenizer.chat_template'), source, 'the writer stored the template byte for byte');
      const expected = await expectedRenders();
      const [year, month, day] = expected.strftime_now.split('-').map(Number);
      const template = await loadModelChatTemplate(gguf, { now: () => new Date(year, month - 1, day) });
      assert.match(template.source, /tokenizer\.chat_template/);
      const cases = Object.entries(expected.renders[file]);
      assert.equal(cases.length, 6);
      for (const [name, c] of cases) {
        if (c.text !== undefined) assert.equal(template.render(c.messages, { addGenerationPrompt: true }), c.text, name);
        else assert.throws(() => template.render(c.messages, { addGenerationPrompt: true }), (err: unknown) => err instanceof InvalidArgumentError && err.message === c.error, name);
      }
    });
  }

  test('the writer copies a directory\'s tokenizer_config.json chat_template into the file', async (t) => {
    const dir = await tempDir(t, 'gguf-template-dir');
    for (const f of CHECKPOINT_FILES) await copyFile(join(fixtureDir('tiny-mistral'), f), join(dir, f));
    const source = await readFile(join(TEMPLATES, NEMO), 'utf8');
    await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<s>', eos_token: '</s>', chat_template: source }));
    const gguf = await fixtureGguf(t, 'tiny-mistral', 'BF16', { dir });
    const template = await loadModelChatTemplate(gguf);
    const messages: ChatMessage[] = [{ role: 'user', content: 'Hi' }];
    assert.equal(template.render(messages, { addGenerationPrompt: true }), '<s>[INST]Hi[/INST]');
  });

  test('the template\'s end-of-turn token stops generation, as for a directory', async (t) => {
    const dir = await tempDir(t, 'gguf-template-eot');
    for (const f of CHECKPOINT_FILES) await copyFile(join(fixtureDir('tiny-mistral'), f), join(dir, f));
    // Mistral v0.1's vocabulary with its last id made a control token, a ChatML-style end of turn.
    const json = JSON.parse(hubTokenizerJson('sp-v1')) as { added_tokens: object[] };
    json.added_tokens.push({ id: 31999, content: '<|im_end|>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
    await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(json));
    const chatTemplate = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
    const gguf = await fixtureGguf(t, 'tiny-mistral', 'BF16', { dir, chatTemplate });
    const tokenizer = await loadModelTokenizer(gguf, { bosTokenId: 1, eosTokenId: 2 });
    assert.deepEqual(tokenizer.encode('<|im_end|>', { addBos: false }), [31999]);
    assert.deepEqual([...tokenizer.stopIds].sort((a, b) => a - b), [2, 31999], 'EOS and <|im_end|>, the template\'s end of turn');
    const plain = await fixtureGguf(t, 'tiny-mistral', 'BF16', { dir, chatTemplate: "{% for m in messages %}[INST]{{ m.content }}[/INST]{% endfor %}" });
    assert.deepEqual([...(await loadModelTokenizer(plain, { bosTokenId: 1, eosTokenId: 2 })).stopIds], [2], 'no end-of-turn token in that template');
  });

  test('a file without tokenizer.chat_template gets the built-in [INST] format', async (t) => {
    const gguf = await fixtureGguf(t, 'tiny-mistral', 'Q8_0');
    const template = await loadModelChatTemplate(gguf);
    assert.equal(template.source, FALLBACK_TEMPLATE_SOURCE);
    const messages: ChatMessage[] = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }];
    const fallback = fallbackChatTemplate({ bosToken: '<s>', eosToken: '</s>' });
    assert.equal(template.render(messages, { addGenerationPrompt: true }), fallback.render(messages, { addGenerationPrompt: true }));
  });

  test('a tokenizer.chat_template that does not parse is a CheckpointError naming the file', async (t) => {
    const gguf = await fixtureGguf(t, 'tiny-mistral', 'Q8_0', { chatTemplate: '{% for m in messages %}{{ m.content }' });
    await assert.rejects(loadModelChatTemplate(gguf), (err: unknown) => err instanceof CheckpointError && err.message.includes(gguf) && err.message.includes('tokenizer.chat_template'));
  });
});
