/**
 * Text <-> token ids for a model directory. Two backends stand behind one interface (chosen by
 * load-tokenizer.ts):
 *  - `<modelDir>/tokenizer.json` when present: a Hugging Face tokenizers file (SentencePiece-style
 *    BPE with byte fallback, or byte-level BPE), run by @huggingface/tokenizers (hf-tokenizer.ts);
 *  - otherwise, when the directory has no tokenizer files, the built-in Mistral v0.1 vocabulary
 *    (mistral-v1.ts).
 *
 * Shared contract of both backends:
 *  - encode() adds BOS unless `addBos: false`; it never adds EOS. Special tokens written in the
 *    text ("<s>", "[INST]" where the vocabulary has it as a control token) become their ids, as
 *    Hugging Face tokenizers do; a rendered chat template relies on that.
 *  - decode() leaves special tokens (<s>, </s>, <unk>, control tokens) out, undoes the
 *    SentencePiece space marker and dummy prefix (or the byte-level byte spelling), and turns
 *    byte-fallback tokens into UTF-8. A byte sequence that is not (yet) valid UTF-8 decodes to
 *    U+FFFD, and decoding is prefix-stable: when decode(ids[0, n)) does not end in U+FFFD it is a
 *    prefix of decode(ids[0, m)) for every m > n. StreamDecoder relies on that.
 *  - an id outside [0, vocabSize) is an InvalidArgumentError.
 *  - stopIds: the ids that end a generation: EOS, the EOS ids generation_config.json lists, and
 *    the chat template's end-of-turn token.
 */
export interface Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly stopIds: readonly number[];
  encode(text: string, options?: { addBos?: boolean }): number[];
  decode(ids: readonly number[]): string;
  /** The id of a token string (a special token or a vocabulary piece); undefined when it is none. */
  tokenId(token: string): number | undefined;
}

/** The special-token ids a checkpoint's config.json declares. */
export interface SpecialTokenIds {
  readonly bosTokenId: number;
  readonly eosTokenId: number;
}

export const TOKENIZER_FILE_NAME = 'tokenizer.json';
export const TOKENIZER_CONFIG_FILE_NAME = 'tokenizer_config.json';
export const GENERATION_CONFIG_FILE_NAME = 'generation_config.json';
/** A SentencePiece model file; Bora reads tokenizer.json instead and needs it alongside. */
export const SENTENCEPIECE_FILE_NAME = 'tokenizer.model';
