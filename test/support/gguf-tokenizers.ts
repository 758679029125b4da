/**
 * Small tokenizer.json files for the GGUF tokenizer tests: a SentencePiece-style BPE with byte
 * fallback (Mistral's layout) and a byte-level BPE (GPT-2's layout), each with a handful of
 * merges; and the files of a fixture checkpoint.
 */
import { CONFIG_FILE, SINGLE_FILE } from '../../common/model/checkpoint';

export const CHECKPOINT_FILES = [CONFIG_FILE, SINGLE_FILE];

const SPACE = '\u2581';

function special(id: number, content: string): Record<string, unknown> {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
}

/** Mistral's layout: <unk> <s> </s>, 256 byte pieces, then pieces built by the merges. */
export function sentencePieceTokenizerJson(): string {
  const pieces = [SPACE, 'h', 'e', 'l', 'o', 'w', 'r', 'd', 'n', 'f', 'u', 'H', ',', '!', 'll', `${SPACE}h`, `${SPACE}he`, 'llo', `${SPACE}hello`, `${SPACE}w`, 'or', `${SPACE}wor`, 'on', `${SPACE}won`, 'de', 'der'];
  const merges: [string, string][] = [
    ['l', 'l'],
    [SPACE, 'h'],
    [`${SPACE}h`, 'e'],
    ['ll', 'o'],
    [`${SPACE}he`, 'llo'],
    [SPACE, 'w'],
    ['o', 'r'],
    [`${SPACE}w`, 'or'],
    ['o', 'n'],
    [`${SPACE}w`, 'on'],
    ['d', 'e'],
    ['de', 'r'],
  ];
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = 3 + b;
  pieces.forEach((p, i) => (vocab[p] = 259 + i));
  return JSON.stringify({
    version: '1.0',
    added_tokens: [special(0, '<unk>'), special(1, '<s>'), special(2, '</s>')],
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: SPACE }, { type: 'Replace', pattern: { String: ' ' }, content: SPACE }] },
    pre_tokenizer: null,
    post_processor: null,
    decoder: {
      type: 'Sequence',
      decoders: [{ type: 'Replace', pattern: { String: SPACE }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }],
    },
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, vocab, merges: merges.map(([a, b]) => `${a} ${b}`) },
  });
}

/** GPT-2's byte-to-character table: printable bytes stand for themselves, the rest from U+0100 on. */
function byteChars(): string[] {
  const chars: string[] = [];
  let next = 256;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    chars.push(String.fromCodePoint(printable ? b : next++));
  }
  return chars;
}

/** GPT-2's layout: <s> </s>, the 256 byte characters, then merges over them. */
export function byteLevelTokenizerJson(): string {
  const bytes = byteChars();
  const G = bytes[0x20]; // the space character, \u0120
  const merges: [string, string][] = [
    ['l', 'l'],
    [G, 'h'],
    [`${G}h`, 'e'],
    ['ll', 'o'],
    [`${G}he`, 'llo'],
    [G, 'w'],
    ['o', 'r'],
    [`${G}w`, 'or'],
  ];
  const vocab: Record<string, number> = { '<s>': 0, '</s>': 1 };
  bytes.forEach((c, i) => (vocab[c] = 2 + i));
  merges.forEach(([a, b], i) => (vocab[a + b] = 258 + i));
  return JSON.stringify({
    version: '1.0',
    added_tokens: [special(0, '<s>'), special(1, '</s>')],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab, merges: merges.map(([a, b]) => `${a} ${b}`) },
  });
}
