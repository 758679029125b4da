/**
 * Reads a Hugging Face tokenizers file (tokenizer.json) into a typed, validated spec, accepting
 * only the SentencePiece-style BPE form that Mistral and Llama checkpoints ship:
 *  - model: BPE over characters, optional byte fallback (<0xNN> pieces), no word prefixes/suffixes;
 *  - normalizer: Prepend / Replace (literal) / Unicode normal forms, or none;
 *  - pre_tokenizer: Metaspace, or none;
 *  - decoder: Replace / ByteFallback / Fuse / Strip / Metaspace steps, or none.
 * Anything else (WordPiece, byte-level BPE, regex splitting, ...) is a CheckpointError that names
 * the file and the unsupported part, so the operator knows the checkpoint, not Bora, is the issue.
 */
import { CheckpointError } from '../errors';

export interface AddedToken {
  readonly id: number;
  readonly content: string;
  /** Special tokens (<s>, </s>, control tokens) are left out of decode() output. */
  readonly special: boolean;
  /** The token absorbs the whitespace on its left / right when it is matched in input text. */
  readonly lstrip: boolean;
  readonly rstrip: boolean;
}

export type NormalizerStep =
  | { readonly kind: 'prepend'; readonly text: string }
  | { readonly kind: 'replace'; readonly pattern: string; readonly content: string }
  | { readonly kind: 'unicode'; readonly form: 'NFC' | 'NFD' | 'NFKC' | 'NFKD' };

export type PrependScheme = 'first' | 'always' | 'never';

export interface MetaspaceSpec {
  readonly replacement: string;
  readonly prependScheme: PrependScheme;
  /** Split into words, each starting at a replacement character, before BPE. */
  readonly split: boolean;
}

export type DecoderStep =
  | { readonly kind: 'replace'; readonly pattern: string; readonly content: string }
  | { readonly kind: 'byte-fallback' }
  | { readonly kind: 'fuse' }
  | { readonly kind: 'strip'; readonly content: string; readonly start: number; readonly stop: number }
  | { readonly kind: 'metaspace'; readonly replacement: string; readonly prependScheme: PrependScheme };

export interface HfBpeSpec {
  /** Piece -> id for the model vocabulary (added tokens are separate). */
  readonly vocab: ReadonlyMap<string, number>;
  /** Merge rules, highest priority first. */
  readonly merges: readonly (readonly [string, string])[];
  readonly byteFallback: boolean;
  readonly unkToken: string | null;
  readonly fuseUnk: boolean;
  /** A word that is itself a vocabulary piece is taken whole, without merging. */
  readonly ignoreMerges: boolean;
  readonly addedTokens: readonly AddedToken[];
  readonly normalizer: readonly NormalizerStep[];
  readonly metaspace: MetaspaceSpec | null;
  readonly decoder: readonly DecoderStep[];
}

type Json = Record<string, unknown>;

function isJson(value: unknown): value is Json {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

class SpecReader {
  constructor(readonly file: string) {}

  fail(message: string): never {
    throw new CheckpointError(this.file, message);
  }

  object(value: unknown, where: string): Json {
    if (!isJson(value)) this.fail(`${where} must be a JSON object`);
    return value;
  }

  string(value: unknown, where: string): string {
    if (typeof value !== 'string') this.fail(`${where} must be a string, got ${JSON.stringify(value)}`);
    return value;
  }

  /** A token id or a count. */
  natural(value: unknown, where: string): number {
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
      this.fail(`${where} must be a non-negative integer, got ${JSON.stringify(value)}`);
    }
    return value;
  }

  /** A Replace step's {"String": "..."} pattern; regular-expression patterns are not supported. */
  literalPattern(step: Json, where: string): string {
    const pattern = this.object(step.pattern, `${where}.pattern`);
    if (typeof pattern.String !== 'string' || pattern.String === '') {
      this.fail(`${where}: only a non-empty literal {"String": ...} pattern is supported, got ${JSON.stringify(pattern)}`);
    }
    return pattern.String;
  }

  /** Metaspace's prepend rule: `prepend_scheme` in current files, `add_prefix_space` in older ones. */
  prependScheme(step: Json, where: string): PrependScheme {
    const scheme = step.prepend_scheme;
    if (scheme === 'first' || scheme === 'always' || scheme === 'never') return scheme;
    if (scheme !== undefined) this.fail(`${where}.prepend_scheme ${JSON.stringify(scheme)} is not first/always/never`);
    return step.add_prefix_space === false ? 'never' : 'always';
  }

  /** A single step or a {"type": "Sequence", <key>: [...]} of steps, flattened. */
  steps(value: unknown, key: string, where: string): Json[] {
    if (value === null || value === undefined) return [];
    const step = this.object(value, where);
    if (step.type !== 'Sequence') return [step];
    const list = step[key];
    if (!Array.isArray(list)) this.fail(`${where}.${key} must be an array`);
    return list.flatMap((inner, i) => this.steps(inner, key, `${where}.${key}[${i}]`));
  }
}

function readModel(r: SpecReader, raw: unknown): Omit<HfBpeSpec, 'addedTokens' | 'normalizer' | 'metaspace' | 'decoder'> {
  const model = r.object(raw, '"model"');
  if (model.type !== 'BPE') {
    r.fail(`model.type ${JSON.stringify(model.type)} is not supported: Bora reads SentencePiece-style "BPE" tokenizers`);
  }
  for (const key of ['continuing_subword_prefix', 'end_of_word_suffix'] as const) {
    if (model[key] != null && model[key] !== '') r.fail(`model.${key} is not supported (SentencePiece BPE has none)`);
  }
  if (model.dropout != null && model.dropout !== 0) r.fail('model.dropout is not supported: encoding must be deterministic');
  const vocabJson = r.object(model.vocab, 'model.vocab');
  const vocab = new Map<string, number>();
  for (const [piece, id] of Object.entries(vocabJson)) vocab.set(piece, r.natural(id, `model.vocab[${JSON.stringify(piece)}]`));
  if (!Array.isArray(model.merges)) r.fail('model.merges must be an array');
  const merges = model.merges.map((merge: unknown, i): readonly [string, string] => {
    // Older files write a merge as "left right"; newer ones as ["left", "right"].
    const parts = typeof merge === 'string' ? merge.split(' ') : merge;
    if (!Array.isArray(parts) || parts.length !== 2 || typeof parts[0] !== 'string' || typeof parts[1] !== 'string') {
      r.fail(`model.merges[${i}] must be "left right" or ["left", "right"], got ${JSON.stringify(merge)}`);
    }
    return [parts[0], parts[1]];
  });
  const unkToken = model.unk_token == null ? null : r.string(model.unk_token, 'model.unk_token');
  return {
    vocab,
    merges,
    byteFallback: model.byte_fallback === true,
    unkToken,
    fuseUnk: model.fuse_unk === true,
    ignoreMerges: model.ignore_merges === true,
  };
}

function readAddedTokens(r: SpecReader, raw: unknown): AddedToken[] {
  if (raw == null) return [];
  if (!Array.isArray(raw)) r.fail('"added_tokens" must be an array');
  return raw.map((entry: unknown, i) => {
    const token = r.object(entry, `added_tokens[${i}]`);
    const content = r.string(token.content, `added_tokens[${i}].content`);
    if (content === '') r.fail(`added_tokens[${i}].content is empty`);
    return {
      id: r.natural(token.id, `added_tokens[${i}].id`),
      content,
      special: token.special === true,
      lstrip: token.lstrip === true,
      rstrip: token.rstrip === true,
    };
  });
}

function readNormalizer(r: SpecReader, raw: unknown): NormalizerStep[] {
  return r.steps(raw, 'normalizers', '"normalizer"').map((step): NormalizerStep => {
    switch (step.type) {
      case 'Prepend':
        return { kind: 'prepend', text: r.string(step.prepend, 'normalizer Prepend.prepend') };
      case 'Replace':
        return {
          kind: 'replace',
          pattern: r.literalPattern(step, 'normalizer Replace'),
          content: r.string(step.content, 'normalizer Replace.content'),
        };
      case 'NFC':
      case 'NFD':
      case 'NFKC':
      case 'NFKD':
        return { kind: 'unicode', form: step.type };
      default:
        return r.fail(`normalizer ${JSON.stringify(step.type)} is not supported (Prepend, Replace, NFC/NFD/NFKC/NFKD are)`);
    }
  });
}

function readPreTokenizer(r: SpecReader, raw: unknown): MetaspaceSpec | null {
  const steps = r.steps(raw, 'pretokenizers', '"pre_tokenizer"');
  if (steps.length === 0) return null;
  const step = steps[0];
  if (steps.length > 1 || step.type !== 'Metaspace') {
    r.fail(`pre_tokenizer ${JSON.stringify(steps.map((s) => s.type))} is not supported: only a single Metaspace`);
  }
  const replacement = r.string(step.replacement ?? '▁', 'pre_tokenizer Metaspace.replacement');
  if ([...replacement].length !== 1) r.fail('pre_tokenizer Metaspace.replacement must be one character');
  return { replacement, prependScheme: r.prependScheme(step, 'pre_tokenizer Metaspace'), split: step.split !== false };
}

function readDecoder(r: SpecReader, raw: unknown): DecoderStep[] {
  return r.steps(raw, 'decoders', '"decoder"').map((step): DecoderStep => {
    switch (step.type) {
      case 'Replace':
        return {
          kind: 'replace',
          pattern: r.literalPattern(step, 'decoder Replace'),
          content: r.string(step.content, 'decoder Replace.content'),
        };
      case 'ByteFallback':
        return { kind: 'byte-fallback' };
      case 'Fuse':
        return { kind: 'fuse' };
      case 'Strip': {
        const content = r.string(step.content, 'decoder Strip.content');
        if ([...content].length !== 1) r.fail('decoder Strip.content must be one character');
        const start = r.natural(step.start ?? 0, 'decoder Strip.start');
        return { kind: 'strip', content, start, stop: r.natural(step.stop ?? 0, 'decoder Strip.stop') };
      }
      case 'Metaspace':
        return {
          kind: 'metaspace',
          replacement: r.string(step.replacement ?? '▁', 'decoder Metaspace.replacement'),
          prependScheme: r.prependScheme(step, 'decoder Metaspace'),
        };
      default:
        return r.fail(`decoder ${JSON.stringify(step.type)} is not supported (Replace, ByteFallback, Fuse, Strip, Metaspace are)`);
    }
  });
}

/** Parses tokenizer.json text. `file` names the file in every error. */
export function parseHfTokenizerJson(text: string, file: string): HfBpeSpec {
  const r = new SpecReader(file);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new CheckpointError(file, `not valid JSON (${(err as Error).message})`, { cause: err });
  }
  const json = r.object(raw, 'the file');
  return Object.freeze({
    ...readModel(r, json.model),
    addedTokens: readAddedTokens(r, json.added_tokens),
    normalizer: readNormalizer(r, json.normalizer),
    metaspace: readPreTokenizer(r, json.pre_tokenizer),
    decoder: readDecoder(r, json.decoder),
  });
}
