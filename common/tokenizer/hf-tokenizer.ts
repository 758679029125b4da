/**
 * A Tokenizer over a Hugging Face tokenizer.json, run by @huggingface/tokenizers (the pure-JS
 * implementation of the tokenizers library that transformers.js uses). It reads every layout the
 * hub ships for Mistral models: SentencePiece-style BPE with byte fallback (v0.1-v0.3, 32000 /
 * 32768 pieces) and byte-level BPE (the Tekken-based models, 131072 ids).
 *
 * What this wrapper adds to the library, for the Tokenizer contract (tokenizer.ts):
 *  - encode() runs without the file's post-processor and puts BOS in front itself (unless
 *    addBos: false), so the caller decides, and chat renders that already hold "<s>" as text
 *    (matched as the special token) get no second one;
 *  - decode() leaves special tokens out and never cleans up spaces (" ." would become ".", which
 *    breaks the prefix stability StreamDecoder needs); ids are checked against the vocabulary;
 *  - BOS / EOS / the ids that end a generation come from the model's files (load-tokenizer.ts)
 *    and are checked to be tokens of this file;
 *  - speed on long prompts (chunkSentencePieceWords): a SentencePiece-style file has no
 *    pre-tokenizer, so the library runs BPE over the whole text as one word, and its BPE on a
 *    word of n characters costs far more than linear (1 MiB of text: 40 s). Where no vocabulary
 *    piece holds '▁' after another character (true of every Mistral vocabulary), no merge can join
 *    a character to a following '▁', so BPE over the word equals BPE over its pieces cut before
 *    each such '▁', concatenated: the cut is exact, and makes the cost linear (1 MiB: under 1 s).
 */
import type * as TokenizersModule from '@huggingface/tokenizers' with { 'resolution-mode': 'import' };
import { CheckpointError, InvalidArgumentError } from '../errors';

// The package's types describe its ES module; its CommonJS build (loaded here) has the same API.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { Tokenizer: HfTokenizer } = require('@huggingface/tokenizers') as typeof TokenizersModule;
type HfTokenizer = TokenizersModule.Tokenizer;
import type { Tokenizer } from './tokenizer';

/**
 * The special tokens as the model's files name them: an id (config.json), or a token string
 * (tokenizer_config.json's bos_token / eos_token), looked up in this file.
 */
export interface HfSpecialTokens {
  readonly bos: number | string;
  readonly eos: number | string;
  /** More ids that end a generation (config.json's and generation_config.json's EOS lists). */
  readonly extraStopIds?: readonly number[];
  /** Names where the special tokens were declared, in errors; default: config.json. */
  readonly declaredIn?: string;
}

interface TokenizerJsonShape {
  readonly model?: { readonly type?: unknown; readonly vocab?: unknown };
  readonly added_tokens?: readonly { readonly id?: unknown; readonly content?: unknown }[];
}

export class HfJsonTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  private readonly stops: Set<number>;
  private readonly lib: HfTokenizer;
  private readonly addedById = new Map<number, string>();

  constructor(json: unknown, file: string, special: HfSpecialTokens) {
    const shape = json as TokenizerJsonShape;
    if (typeof json !== 'object' || json === null || typeof shape.model !== 'object' || shape.model === null) {
      throw new CheckpointError(file, 'not a tokenizers file: it has no "model" object');
    }
    if (shape.model.type !== undefined && shape.model.type !== 'BPE') {
      throw new CheckpointError(file, `model.type ${JSON.stringify(shape.model.type)} is not supported (Mistral models use BPE)`);
    }
    if (typeof shape.model.vocab !== 'object' || shape.model.vocab === null || Array.isArray(shape.model.vocab)) {
      throw new CheckpointError(file, 'model.vocab must be an object of piece -> id');
    }
    let maxId = -1;
    for (const id of Object.values(shape.model.vocab as Record<string, unknown>)) {
      if (!Number.isSafeInteger(id) || (id as number) < 0) throw new CheckpointError(file, `model.vocab holds a bad id ${JSON.stringify(id)}`);
      maxId = Math.max(maxId, id as number);
    }
    for (const token of shape.added_tokens ?? []) {
      if (!Number.isSafeInteger(token.id) || (token.id as number) < 0 || typeof token.content !== 'string') {
        throw new CheckpointError(file, `added_tokens holds a bad entry ${JSON.stringify(token)}`);
      }
      this.addedById.set(token.id as number, token.content);
      maxId = Math.max(maxId, token.id as number);
    }
    try {
      this.lib = new HfTokenizer(json as object, { clean_up_tokenization_spaces: false });
    } catch (err) {
      throw new CheckpointError(file, `cannot be read by @huggingface/tokenizers: ${(err as Error).message}`, { cause: err });
    }
    chunkSentencePieceWords(this.lib, shape.model.vocab as Record<string, number>);
    this.vocabSize = maxId + 1;
    const declaredIn = special.declaredIn ?? 'config.json';
    const resolve = (name: string, token: number | string): number => {
      const id = typeof token === 'number' ? token : this.lib.token_to_id(token);
      if (id === undefined || this.lib.id_to_token(id) === undefined) {
        throw new CheckpointError(file, `${declaredIn} ${name} ${JSON.stringify(token)} is not a token of this tokenizer`);
      }
      return id;
    };
    this.bosId = resolve('bos_token', special.bos);
    this.eosId = resolve('eos_token', special.eos);
    this.stops = new Set([this.eosId, ...(special.extraStopIds ?? []).map((id) => resolve('eos_token_id', id))]);
  }

  get stopIds(): readonly number[] {
    return [...this.stops];
  }

  /** Adds ids that end a generation (the chat template's end-of-turn token). */
  addStopIds(ids: readonly number[]): void {
    for (const id of ids) {
      if (this.lib.id_to_token(id) === undefined) throw new InvalidArgumentError(`stop id ${id} is not a token of this tokenizer`);
      this.stops.add(id);
    }
  }

  encode(text: string, options: { addBos?: boolean } = {}): number[] {
    const body = text === '' ? [] : this.lib.encode(text, { add_special_tokens: false }).ids;
    return options.addBos ?? true ? [this.bosId, ...body] : body;
  }

  decode(ids: readonly number[]): string {
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize || this.lib.id_to_token(id) === undefined) {
        throw new InvalidArgumentError(`token id ${id} is not in the vocabulary (size ${this.vocabSize})`);
      }
    }
    if (ids.length === 0) return '';
    return this.lib.decode(ids as number[], { skip_special_tokens: true, clean_up_tokenization_spaces: false });
  }

  /** The id of a token string (an added token or a model piece); undefined when it is none. */
  tokenId(token: string): number | undefined {
    return this.lib.token_to_id(token);
  }
}

const SPACE_MARK = '\u2581'; // '▁'
/** Words shorter than this go to the library's BPE whole (it caches words up to 256 characters). */
const CHUNK_FROM_CHARS = 256;

/** See the file comment: cuts long words before each '▁' that follows another character. */
function chunkSentencePieceWords(lib: HfTokenizer, vocab: Record<string, number>): void {
  const pieces = Object.keys(vocab);
  if (!pieces.some((p) => p.startsWith(SPACE_MARK))) return; // not a SentencePiece-style vocabulary
  if (pieces.some((p) => /[^\u2581]\u2581/u.test(p))) return; // a merge could cross a cut: leave it whole
  const model = lib.model as unknown as { bpe?: (word: string) => string[] } | null;
  if (model === null || typeof model.bpe !== 'function') return;
  const wholeWord = model.bpe.bind(model);
  model.bpe = (word: string): string[] => {
    if (word.length < CHUNK_FROM_CHARS) return wholeWord(word);
    const out: string[] = [];
    let start = 0;
    for (let i = 1; i < word.length; i++) {
      if (word[i] === SPACE_MARK && word[i - 1] !== SPACE_MARK) {
        for (const piece of wholeWord(word.slice(start, i))) out.push(piece);
        start = i;
      }
    }
    for (const piece of wholeWord(word.slice(start))) out.push(piece);
    return out;
  };
}
