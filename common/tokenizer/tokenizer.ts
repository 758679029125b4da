/**
 * Text <-> token ids for a model directory. Two backends stand behind one interface (chosen by
 * load-tokenizer.ts):
 *  - `<modelDir>/tokenizer.json` when present: a Hugging Face tokenizers file of the
 *    SentencePiece-style BPE kind that Mistral and Llama ship (hf-bpe.ts);
 *  - otherwise the built-in Mistral v0.1 vocabulary (mistral-v1.ts).
 *
 * Shared contract of both backends:
 *  - encode() adds BOS unless `addBos: false`; it never adds EOS.
 *  - decode() leaves special tokens (<s>, </s>, <unk>, control tokens) out, undoes the
 *    SentencePiece space marker and dummy prefix, and turns byte-fallback tokens into UTF-8.
 *    A byte sequence that is not (yet) valid UTF-8 decodes to U+FFFD, and decoding is
 *    prefix-stable: when decode(ids[0, n)) does not end in U+FFFD it is a prefix of
 *    decode(ids[0, m)) for every m > n. StreamDecoder relies on that.
 *  - an id outside [0, vocabSize) is an InvalidArgumentError.
 */
export interface Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  encode(text: string, options?: { addBos?: boolean }): number[];
  decode(ids: readonly number[]): string;
}

/** The special-token ids a checkpoint's config.json declares. */
export interface SpecialTokenIds {
  readonly bosTokenId: number;
  readonly eosTokenId: number;
}

export const TOKENIZER_FILE_NAME = 'tokenizer.json';
