import assert from 'node:assert/strict';
import { mkdir, mkdtemp, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CheckpointError, InvalidArgumentError } from '../../../common/errors';
import { loadTokenizer } from '../../../common/tokenizer/load-tokenizer';
import { TOKENIZER_FILE_NAME } from '../../../common/tokenizer/tokenizer';

const IDS = { bosTokenId: 1, eosTokenId: 2 };

/** Id of the byte-fallback piece <0xNN>: the tiny vocabulary puts them at 3..258, as Mistral does. */
const byteId = (byte: number): number => 3 + byte;

/** Pieces after the byte pieces, in id order (ids 259...). */
const PIECES = ['▁', 'h', 'e', 'l', 'o', 'w', 'r', 'd', 'll', '▁h', '▁he', 'llo', '▁hello', '▁w', 'or', '▁wor'];
const id = (piece: string): number => 259 + PIECES.indexOf(piece);
/** Highest priority first. */
const MERGES: [string, string][] = [
  ['l', 'l'],
  ['▁', 'h'],
  ['▁h', 'e'],
  ['ll', 'o'],
  ['▁he', 'llo'],
  ['▁', 'w'],
  ['o', 'r'],
  ['▁w', 'or'],
];

function vocab(): Record<string, number> {
  const v: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (let b = 0; b < 256; b++) v[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = byteId(b);
  PIECES.forEach((p, i) => (v[p] = 259 + i));
  return v;
}

const ADDED = ['<unk>', '<s>', '</s>'].map((content, i) => ({
  id: i,
  content,
  single_word: false,
  lstrip: false,
  rstrip: false,
  normalized: false,
  special: true,
}));

/** The layout of Mistral 7B v0.1's tokenizer.json: "a b" merges, Prepend + Replace normalizer. */
function legacyFile(): Record<string, unknown> {
  return {
    version: '1.0',
    added_tokens: ADDED,
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: '▁' },
        { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
      ],
    },
    pre_tokenizer: null,
    post_processor: null,
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      vocab: vocab(),
      merges: MERGES.map(([a, b]) => `${a} ${b}`),
    },
  };
}

/** The newer layout: [a, b] merges, a Metaspace pre-tokenizer and decoder, no normalizer. */
function metaspaceFile(): Record<string, unknown> {
  const file = legacyFile();
  const model = file.model as Record<string, unknown>;
  const metaspace = { replacement: '▁', prepend_scheme: 'first', split: false };
  return {
    ...file,
    normalizer: null,
    pre_tokenizer: { type: 'Metaspace', ...metaspace },
    decoder: {
      type: 'Sequence',
      decoders: [{ type: 'ByteFallback' }, { type: 'Metaspace', ...metaspace }],
    },
    model: { ...model, merges: MERGES },
  };
}

describe('tokenizer.json (SentencePiece-style BPE)', () => {
  let root: string;
  let seq = 0;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'bora-tokenizer-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  /** Writes `json` as tokenizer.json into a fresh model directory; returns the directory. */
  async function modelDir(json: unknown): Promise<string> {
    const dir = join(root, `model-${seq++}`);
    await mkdir(dir);
    await writeFile(join(dir, TOKENIZER_FILE_NAME), JSON.stringify(json));
    return dir;
  }

  test('encodes by merge priority, with BOS by default, and decodes back', async () => {
    const tok = await loadTokenizer(await modelDir(legacyFile()), IDS);
    assert.equal(tok.vocabSize, 259 + PIECES.length);
    assert.equal(tok.bosId, 1);
    assert.equal(tok.eosId, 2);
    const ids = tok.encode('hello world');
    assert.deepEqual(ids, [1, id('▁hello'), id('▁wor'), id('l'), id('d')]);
    assert.equal(tok.decode(ids), 'hello world');
    assert.deepEqual(tok.encode('hello', { addBos: false }), [id('▁hello')]);
  });

  test('a character outside the vocabulary goes through byte fallback and decodes back', async () => {
    const tok = await loadTokenizer(await modelDir(legacyFile()), IDS);
    const ids = tok.encode('héllo', { addBos: false }); // é = C3 A9
    assert.deepEqual(ids, [id('▁h'), byteId(0xc3), byteId(0xa9), id('llo')]);
    assert.equal(tok.decode(ids), 'héllo');
    const euro = tok.encode('€', { addBos: false });
    assert.deepEqual(euro, [id('▁'), byteId(0xe2), byteId(0x82), byteId(0xac)]);
    assert.equal(tok.decode(euro), '€');
    // An incomplete sequence decodes to U+FFFD rather than to nothing.
    assert.equal(tok.decode([id('h'), byteId(0xe2), byteId(0x82)]), 'h\uFFFD');
  });

  test('spaces: the dummy prefix is stripped once, other spaces survive', async () => {
    const tok = await loadTokenizer(await modelDir(legacyFile()), IDS);
    const ids = tok.encode(' hello  world', { addBos: false });
    assert.deepEqual(ids, [id('▁'), id('▁hello'), id('▁'), id('▁wor'), id('l'), id('d')]);
    assert.equal(tok.decode(ids), ' hello  world');
  });

  test('special tokens in the text become their ids and are left out of decode', async () => {
    const tok = await loadTokenizer(await modelDir(legacyFile()), IDS);
    const ids = tok.encode('hello</s>', { addBos: false });
    assert.deepEqual(ids, [id('▁hello'), 2]);
    assert.equal(tok.decode([1, ...ids]), 'hello');
  });

  test('the Metaspace layout with [a, b] merges gives the same ids', async () => {
    const tok = await loadTokenizer(await modelDir(metaspaceFile()), IDS);
    const ids = tok.encode('hello wörld');
    assert.deepEqual(ids, [1, id('▁hello'), id('▁w'), byteId(0xc3), byteId(0xb6), id('r'), id('l'), id('d')]);
    assert.equal(tok.decode(ids), 'hello wörld');
  });

  test('an id outside the vocabulary is an InvalidArgumentError', async () => {
    const tok = await loadTokenizer(await modelDir(legacyFile()), IDS);
    assert.throws(() => tok.decode([259 + PIECES.length]), InvalidArgumentError);
    assert.throws(() => tok.decode([-1]), InvalidArgumentError);
  });

  const unsupported: [string, (f: Record<string, unknown>) => Record<string, unknown>, RegExp][] = [
    ['a WordPiece model', (f) => ({ ...f, model: { ...(f.model as object), type: 'WordPiece' } }), /model\.type "WordPiece"/],
    ['a byte-level pre-tokenizer', (f) => ({ ...f, pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false } }), /ByteLevel/],
    ['a merge of unknown pieces', (f) => ({ ...f, model: { ...(f.model as object), merges: ['x y'] } }), /merges\[0\]/],
    [
      'a BOS id the file lacks',
      (f) => ({ ...f, added_tokens: [], model: { ...(f.model as object), vocab: { a: 0 }, merges: [], unk_token: null } }),
      /bos_token_id 1/,
    ],
  ];
  for (const [name, edit, message] of unsupported) {
    test(`${name} is a CheckpointError naming the file`, async () => {
      const dir = await modelDir(edit(legacyFile()));
      await assert.rejects(loadTokenizer(dir, IDS), (err: unknown) => {
        assert.ok(err instanceof CheckpointError);
        assert.ok(err.message.startsWith(join(dir, TOKENIZER_FILE_NAME)), err.message);
        assert.match(err.message, message);
        return true;
      });
    });
  }
});
