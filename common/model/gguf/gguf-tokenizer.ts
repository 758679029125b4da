/**
 * A GGUF file's vocabulary (tokenizer.ggml.*) as Hugging Face tokenizer.json text, and back, so
 * that one tokenizer implementation (tokenizerFromHfJson) serves directories and GGUF files.
 *
 *  - "llama": SentencePiece-style BPE with byte fallback. Tokens, scores and token types; merges
 *    are every split of a piece into two pieces of the vocabulary, ranked by the merged piece's
 *    score (SentencePiece merges the pair whose result scores highest), unless the file carries
 *    tokenizer.ggml.merges (Bora's writer does, to keep the source's exact merge list).
 *  - "gpt2": byte-level BPE with the merges the file lists and the pre-tokenizer regex that
 *    tokenizer.ggml.pre names.
 *
 * Token types are llama.cpp's: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
 */
import { CheckpointError } from '../../errors';
import type { GgufMetadata } from './gguf-header';

export const TOKEN_TYPE = Object.freeze({ NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 });

const SPACE_MARK = '\u2581';

/** Pre-tokenizer regexes of the byte-level vocabularies Bora knows, by tokenizer.ggml.pre. */
export const BYTE_LEVEL_SPLITS: Readonly<Record<string, string>> = Object.freeze({
  default: "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
  'llama-bpe':
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  tekken:
    '[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+',
});

interface AddedToken {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

function addedToken(id: number, content: string, special: boolean): AddedToken {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: !special, special };
}

/** tokenizer.json text for the vocabulary in `meta`. */
export function tokenizerJsonFromGguf(meta: GgufMetadata): string {
  const model = meta.string('tokenizer.ggml.model');
  const tokens = meta.strings('tokenizer.ggml.tokens');
  const types = meta.numbers('tokenizer.ggml.token_type') ?? tokens.map(() => TOKEN_TYPE.NORMAL);
  if (types.length !== tokens.length) throw new CheckpointError(meta.path, `tokenizer.ggml.token_type has ${types.length} entries for ${tokens.length} tokens`);
  const vocab = Object.create(null) as Record<string, number>;
  const added: AddedToken[] = [];
  tokens.forEach((token, id) => {
    if (!Object.hasOwn(vocab, token)) vocab[token] = id;
    if (types[id] === TOKEN_TYPE.CONTROL || types[id] === TOKEN_TYPE.UNKNOWN) added.push(addedToken(id, token, true));
    else if (types[id] === TOKEN_TYPE.USER_DEFINED) added.push(addedToken(id, token, false));
  });
  const bos = meta.integer('tokenizer.ggml.bos_token_id', undefined);
  const addBos = meta.boolean('tokenizer.ggml.add_bos_token', model === 'llama');
  const postProcessor = addBos && bos !== undefined && bos < tokens.length ? bosTemplate(tokens[bos], bos) : null;
  switch (model) {
    case 'llama':
      return JSON.stringify(sentencePieceJson(meta, tokens, types, vocab, added, postProcessor));
    case 'gpt2':
      return JSON.stringify(byteLevelJson(meta, vocab, added, postProcessor));
    default:
      throw new CheckpointError(meta.path, `tokenizer.ggml.model "${model}" is not supported (Bora reads "llama" and "gpt2" vocabularies)`);
  }
}

function bosTemplate(token: string, id: number): Record<string, unknown> {
  return {
    type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: token, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
    pair: [{ SpecialToken: { id: token, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: token, type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
    special_tokens: { [token]: { id: token, ids: [id], tokens: [token] } },
  };
}

function sentencePieceJson(
  meta: GgufMetadata,
  tokens: readonly string[],
  types: readonly number[],
  vocab: Record<string, number>,
  added: AddedToken[],
  postProcessor: unknown,
): Record<string, unknown> {
  const prefix = meta.boolean('tokenizer.ggml.add_space_prefix', true);
  const unkId = meta.integer('tokenizer.ggml.unknown_token_id', types.indexOf(TOKEN_TYPE.UNKNOWN) >= 0 ? types.indexOf(TOKEN_TYPE.UNKNOWN) : undefined);
  const merges = meta.has('tokenizer.ggml.merges') ? splitMerges(meta) : mergesFromScores(meta, tokens, types, vocab);
  const replaceSpace = { type: 'Replace', pattern: { String: ' ' }, content: SPACE_MARK };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: prefix ? { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: SPACE_MARK }, replaceSpace] } : replaceSpace,
    pre_tokenizer: null,
    post_processor: postProcessor,
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: SPACE_MARK }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        ...(prefix ? [{ type: 'Strip', content: ' ', start: 1, stop: 0 }] : []),
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: unkId === undefined ? null : tokens[unkId],
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
}

/**
 * SentencePiece's merge order as a BPE merge list: every split of a normal piece into two
 * pieces of the vocabulary, the pieces with the highest score first (ties: lower id first),
 * the splits of one piece by their left then right ids.
 */
function mergesFromScores(meta: GgufMetadata, tokens: readonly string[], types: readonly number[], vocab: Record<string, number>): [string, string][] {
  const scores = meta.numbers('tokenizer.ggml.scores');
  if (scores === undefined || scores.length !== tokens.length) {
    throw new CheckpointError(meta.path, `tokenizer.ggml.scores must hold one score per token (${tokens.length})`);
  }
  const isPiece = (id: number | undefined): id is number => id !== undefined && (types[id] === TOKEN_TYPE.NORMAL || types[id] === TOKEN_TYPE.USER_DEFINED);
  const ranked: { id: number; left: number; right: number }[] = [];
  tokens.forEach((piece, id) => {
    if (types[id] !== TOKEN_TYPE.NORMAL || vocab[piece] !== id) return;
    const chars = [...piece];
    for (let cut = 1; cut < chars.length; cut++) {
      const left = vocab[chars.slice(0, cut).join('')];
      const right = vocab[chars.slice(cut).join('')];
      if (isPiece(left) && isPiece(right)) ranked.push({ id, left, right });
    }
  });
  ranked.sort((a, b) => scores[b.id] - scores[a.id] || a.id - b.id || a.left - b.left || a.right - b.right);
  return ranked.map((m) => [tokens[m.left], tokens[m.right]]);
}

function splitMerges(meta: GgufMetadata): [string, string][] {
  return meta.strings('tokenizer.ggml.merges').map((merge, i) => {
    const space = merge.indexOf(' ', 1);
    if (space <= 0) throw new CheckpointError(meta.path, `tokenizer.ggml.merges[${i}] ${JSON.stringify(merge)} is not two tokens`);
    return [merge.slice(0, space), merge.slice(space + 1)];
  });
}

function byteLevelJson(meta: GgufMetadata, vocab: Record<string, number>, added: AddedToken[], postProcessor: unknown): Record<string, unknown> {
  const pre = meta.string('tokenizer.ggml.pre', 'default');
  const split = BYTE_LEVEL_SPLITS[pre === 'gpt-2' ? 'default' : pre === 'llama3' ? 'llama-bpe' : pre];
  if (split === undefined) {
    throw new CheckpointError(meta.path, `tokenizer.ggml.pre "${pre}" is not a pre-tokenizer Bora knows (${Object.keys(BYTE_LEVEL_SPLITS).join(', ')})`);
  }
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: split }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: postProcessor,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: pre === 'llama-bpe' || pre === 'llama3',
      vocab,
      merges: splitMerges(meta),
    },
  };
}

// ---- tokenizer.json -> GGUF metadata (the writer) --------------------------------------------

/** The tokenizer.ggml.* values of a vocabulary, ready for the writer. */
export interface GgufVocab {
  readonly model: 'llama' | 'gpt2';
  readonly pre?: string;
  readonly tokens: string[];
  readonly scores?: Float32Array;
  readonly types: Int32Array;
  readonly merges: string[];
  readonly unknownId?: number;
  readonly addBos: boolean;
}

type Json = Record<string, unknown>;

/**
 * The vocabulary of tokenizer.json text, padded with unused "[PAD<id>]" tokens to `vocabSize`
 * (llama.cpp sizes the vocabulary from the token list). `file` names the source in errors.
 */
export function ggufVocabFromTokenizerJson(text: string, file: string, vocabSize: number): GgufVocab {
  let json: Json;
  try {
    json = JSON.parse(text) as Json;
  } catch (err) {
    throw new CheckpointError(file, `not valid JSON (${(err as Error).message})`, { cause: err });
  }
  const model = (json.model ?? {}) as Json;
  if (model.type !== 'BPE') throw new CheckpointError(file, `model.type ${JSON.stringify(model.type)}: only BPE vocabularies can be written to GGUF`);
  const tokens: (string | undefined)[] = new Array<string | undefined>(vocabSize).fill(undefined);
  const types = new Int32Array(vocabSize).fill(TOKEN_TYPE.NORMAL);
  const place = (token: string, id: unknown, type: number): void => {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) throw new CheckpointError(file, `token ${JSON.stringify(token)} has id ${JSON.stringify(id)}`);
    if (id >= vocabSize) throw new CheckpointError(file, `token ${JSON.stringify(token)} has id ${id}, outside the model's vocabulary of ${vocabSize}`);
    tokens[id] = token;
    types[id] = type;
  };
  const byteFallback = model.byte_fallback === true;
  for (const [token, id] of Object.entries((model.vocab ?? {}) as Record<string, unknown>)) {
    place(token, id, byteFallback && /^<0x[0-9A-F]{2}>$/.test(token) ? TOKEN_TYPE.BYTE : TOKEN_TYPE.NORMAL);
  }
  for (const t of (json.added_tokens ?? []) as Json[]) place(String(t.content), t.id, t.special === true ? TOKEN_TYPE.CONTROL : TOKEN_TYPE.USER_DEFINED);
  const unkToken = typeof model.unk_token === 'string' ? model.unk_token : undefined;
  const unknownId = unkToken === undefined ? undefined : tokens.indexOf(unkToken);
  if (unknownId !== undefined && unknownId >= 0) types[unknownId] = TOKEN_TYPE.UNKNOWN;
  tokens.forEach((t, id) => {
    if (t === undefined) {
      tokens[id] = `[PAD${id}]`;
      types[id] = TOKEN_TYPE.UNUSED;
    }
  });
  const merges = ((model.merges ?? []) as unknown[]).map((m) => (typeof m === 'string' ? m : (m as string[]).join(' ')));
  const addBos = JSON.stringify(json.post_processor ?? null).includes('SpecialToken') || byteFallback;
  if (byteFallback) {
    // SentencePiece ranks merges by the merged piece's score: the earliest merge producing a
    // piece gives it the highest score.
    const scores = new Float32Array(vocabSize);
    const scored = new Set<number>();
    const idOf = new Map<string, number>();
    tokens.forEach((t, id) => idOf.has(t as string) || idOf.set(t as string, id));
    merges.forEach((merge, rank) => {
      const id = idOf.get(merge.replace(' ', '')) ?? -1;
      if (id >= 0 && !scored.has(id)) {
        scored.add(id);
        scores[id] = -(rank + 1);
      }
    });
    return { model: 'llama', tokens: tokens as string[], scores, types, merges, unknownId: unknownId !== undefined && unknownId >= 0 ? unknownId : undefined, addBos };
  }
  const pre = preTokenizerName(json.pre_tokenizer);
  if (pre === undefined) throw new CheckpointError(file, 'a byte-level vocabulary whose pre-tokenizer regex Bora does not know cannot be written to GGUF');
  return { model: 'gpt2', pre, tokens: tokens as string[], types, merges, addBos };
}

function preTokenizerName(pre: unknown): string | undefined {
  const text = JSON.stringify(pre ?? null);
  if (!text.includes('ByteLevel')) return undefined;
  for (const [name, regex] of Object.entries(BYTE_LEVEL_SPLITS)) if (text.includes(JSON.stringify(regex).slice(1, -1))) return name;
  return text.includes('"use_regex":true') ? 'default' : undefined;
}
