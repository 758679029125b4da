/**
 * A Tokenizer over a parsed tokenizer.json of the SentencePiece-style BPE kind (Mistral, Llama).
 *
 * encode(text):
 *   1. added tokens (<s>, [INST], ...) found in the raw text become their ids; the text between
 *      them is encoded on its own (leftmost match, longest token first, as tokenizers does);
 *   2. each such segment is normalized (e.g. prepend '▁', spaces -> '▁') and, with a Metaspace
 *      pre-tokenizer, space-marked and split into words;
 *   3. each word starts as one symbol per character; a character outside the vocabulary becomes
 *      its UTF-8 bytes as <0xNN> pieces (byte fallback) or <unk>; then BPE merges (bpe-merge.ts).
 * decode(ids): special tokens are left out; the rest go through the file's decoder (hf-decoder.ts).
 *
 * Added tokens are matched in the raw text whatever their "normalized" flag says; Mistral and
 * Llama files set it false for every added token, where the two readings agree.
 */
import { CheckpointError, InvalidArgumentError } from '../errors';
import { BpeMerges } from './bpe-merge';
import { runDecoder } from './hf-decoder';
import type { AddedToken, HfBpeSpec } from './hf-tokenizer-file';
import type { SpecialTokenIds, Tokenizer } from './tokenizer';

type Segment = { readonly kind: 'text'; readonly text: string; readonly offset: number } | { readonly kind: 'added'; readonly id: number };

const WHITESPACE = /\s/;

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function bytePieceName(byte: number): string {
  return `<0x${byte.toString(16).toUpperCase().padStart(2, '0')}>`;
}

export class HfBpeTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  private readonly spec: HfBpeSpec;
  private readonly merges: BpeMerges;
  /** Id -> token string (model piece, or added token content); undefined for unused ids. */
  private readonly pieces: (string | undefined)[] = [];
  private readonly specialIds = new Set<number>();
  private readonly addedByContent = new Map<string, AddedToken>();
  /** Matches any added token, longest first; null when there are none. */
  private readonly addedPattern: RegExp | null;
  /** Byte -> id of its <0xNN> piece, -1 where the vocabulary lacks it. */
  private readonly byteIds = new Int32Array(256).fill(-1);
  private readonly unkId: number | undefined;

  constructor(spec: HfBpeSpec, ids: SpecialTokenIds, file: string) {
    this.spec = spec;
    this.merges = new BpeMerges(spec.vocab, spec.merges, file);
    for (const [piece, id] of spec.vocab) this.pieces[id] = piece;
    for (const token of spec.addedTokens) {
      this.pieces[token.id] = token.content;
      this.addedByContent.set(token.content, token);
      if (token.special) this.specialIds.add(token.id);
    }
    this.vocabSize = this.pieces.length;
    const contents = [...this.addedByContent.keys()].sort((a, b) => b.length - a.length);
    this.addedPattern = contents.length === 0 ? null : new RegExp(contents.map(escapeRegExp).join('|'), 'gu');
    for (let byte = 0; byte < 256; byte++) this.byteIds[byte] = spec.vocab.get(bytePieceName(byte)) ?? -1;
    this.unkId = spec.unkToken === null ? undefined : spec.vocab.get(spec.unkToken);
    if (spec.unkToken !== null && this.unkId === undefined) {
      throw new CheckpointError(file, `model.unk_token ${JSON.stringify(spec.unkToken)} is not in model.vocab`);
    }
    for (const [name, id] of [['bos_token_id', ids.bosTokenId], ['eos_token_id', ids.eosTokenId]] as const) {
      if (this.pieces[id] === undefined) {
        throw new CheckpointError(file, `config.json ${name} ${id} is not a token of this tokenizer`);
      }
    }
    this.bosId = ids.bosTokenId;
    this.eosId = ids.eosTokenId;
  }

  encode(text: string, options: { addBos?: boolean } = {}): number[] {
    const out: number[] = options.addBos ?? true ? [this.bosId] : [];
    for (const segment of this.segments(text)) {
      if (segment.kind === 'added') {
        out.push(segment.id);
        continue;
      }
      for (const word of this.words(segment.text, segment.offset === 0)) {
        for (const id of this.encodeWord(word)) out.push(id);
      }
    }
    return out;
  }

  decode(ids: readonly number[]): string {
    const tokens: string[] = [];
    for (const id of ids) {
      const piece = Number.isInteger(id) ? this.pieces[id] : undefined;
      if (piece === undefined) throw new InvalidArgumentError(`token id ${id} is not in the vocabulary (size ${this.vocabSize})`);
      if (!this.specialIds.has(id)) tokens.push(piece);
    }
    return runDecoder(this.spec.decoder, tokens);
  }

  /** Splits raw text into added tokens and the plain text between them (never empty). */
  private segments(text: string): Segment[] {
    const out: Segment[] = [];
    let cursor = 0; // start of the text not yet assigned to a segment
    const pushText = (end: number): void => {
      if (end > cursor) out.push({ kind: 'text', text: text.slice(cursor, end), offset: cursor });
    };
    if (this.addedPattern !== null) {
      for (const match of text.matchAll(this.addedPattern)) {
        const token = this.addedByContent.get(match[0]) as AddedToken;
        const matchStart = match.index as number;
        if (matchStart < cursor) continue; // inside whitespace an rstrip token absorbed
        let start = matchStart;
        if (token.lstrip) while (start > cursor && WHITESPACE.test(text[start - 1])) start--;
        pushText(start);
        out.push({ kind: 'added', id: token.id });
        cursor = matchStart + match[0].length;
        if (token.rstrip) while (cursor < text.length && WHITESPACE.test(text[cursor])) cursor++;
      }
    }
    pushText(text.length);
    return out;
  }

  /** Normalizes one plain segment and splits it into the words BPE runs on. */
  private words(segment: string, atTextStart: boolean): string[] {
    let s = segment;
    for (const step of this.spec.normalizer) {
      if (step.kind === 'prepend') s = s === '' ? s : step.text + s;
      else if (step.kind === 'replace') s = s.replaceAll(step.pattern, step.content);
      else s = s.normalize(step.form);
    }
    const meta = this.spec.metaspace;
    if (meta === null) return s === '' ? [] : [s];
    s = s.replaceAll(' ', meta.replacement);
    const prepend = meta.prependScheme === 'always' || (meta.prependScheme === 'first' && atTextStart);
    if (prepend && !s.startsWith(meta.replacement)) s = meta.replacement + s;
    if (!meta.split) return s === '' ? [] : [s];
    // Each word begins at a replacement character ("MergedWithNext").
    const words: string[] = [];
    let start = 0;
    for (let i = s.indexOf(meta.replacement, 1); i > 0; i = s.indexOf(meta.replacement, i + 1)) {
      words.push(s.slice(start, i));
      start = i;
    }
    if (start < s.length) words.push(s.slice(start));
    return words;
  }

  private encodeWord(word: string): number[] {
    if (this.spec.ignoreMerges) {
      const whole = this.spec.vocab.get(word);
      if (whole !== undefined) return [whole];
    }
    const symbols: number[] = [];
    let unkPending = false; // the last symbol is an <unk> that a following unknown char may fuse into
    for (const ch of word) {
      const id = this.spec.vocab.get(ch);
      if (id !== undefined) {
        symbols.push(id);
        unkPending = false;
        continue;
      }
      if (this.spec.byteFallback) {
        const bytes = Buffer.from(ch, 'utf8');
        if (bytes.every((b) => this.byteIds[b] >= 0)) {
          for (const b of bytes) symbols.push(this.byteIds[b]);
          unkPending = false;
          continue;
        }
      }
      if (this.unkId === undefined) {
        const code = (ch.codePointAt(0) as number).toString(16).toUpperCase().padStart(4, '0');
        throw new InvalidArgumentError(`character U+${code} cannot be encoded: not in the vocabulary, and no <unk> token`);
      }
      if (!(this.spec.fuseUnk && unkPending)) symbols.push(this.unkId);
      unkPending = true;
    }
    return this.merges.apply(symbols);
  }
}
