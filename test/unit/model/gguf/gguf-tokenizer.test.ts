/**
 * The tokenizer of a GGUF file: a file written from a fixture directory with a tokenizer.json
 * encodes and decodes as the directory does (through tokenizerFromHfJson); a hub-style file
 * without tokenizer.ggml.merges gets SentencePiece's merge order from the scores; and the
 * converted tokenizer.json is a real one: @huggingface/tokenizers reads it and encodes as it
 * encodes the source file, for a SentencePiece-style and a byte-level vocabulary.
 */
import assert from 'node:assert/strict';
import { copyFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { GgufMetadata, type MetaValue } from '../../../../common/model/gguf/gguf-header';
import { ggufVocabFromTokenizerJson, tokenizerJsonFromGguf, type GgufVocab } from '../../../../common/model/gguf/gguf-tokenizer';
import { loadModelTokenizer } from '../../../../common/model/open-model';
import { loadTokenizer, tokenizerFromHfJson } from '../../../../common/tokenizer/load-tokenizer';
import { byteLevelTokenizerJson, CHECKPOINT_FILES, sentencePieceTokenizerJson } from '../../../support/gguf-tokenizers';
import { fixtureDir, tempDir } from '../../../support/checkpoints';
import { fixtureGguf } from '../../../support/gguf';

/** @huggingface/tokenizers, through its CommonJS build (its typings are ESM-only). */
interface HfTokenizerClass {
  new (json: object, config: object): { encode(text: string, options?: object): { ids: number[] }; decode(ids: number[]): string };
}
// eslint-disable-next-line @typescript-eslint/no-require-imports
const HfTokenizer = (require('@huggingface/tokenizers') as { Tokenizer: HfTokenizerClass }).Tokenizer;

const IDS = { bosTokenId: 1, eosTokenId: 2 };
const TEXTS = ['hello world', 'Hello, wonderful world!', 'héllo € 42', '  two  spaces', ''];

/** GGUF metadata as the header reader gives it, from a vocabulary the writer would store. */
function metadataOf(vocab: GgufVocab, withMerges: boolean): GgufMetadata {
  const values = new Map<string, MetaValue>([
    ['tokenizer.ggml.model', vocab.model],
    ['tokenizer.ggml.tokens', vocab.tokens],
    ['tokenizer.ggml.token_type', Array.from(vocab.types)],
    ['tokenizer.ggml.bos_token_id', 1],
    ['tokenizer.ggml.eos_token_id', 2],
    ['tokenizer.ggml.add_bos_token', vocab.addBos],
  ]);
  if (vocab.scores !== undefined) values.set('tokenizer.ggml.scores', Array.from(vocab.scores));
  if (vocab.pre !== undefined) values.set('tokenizer.ggml.pre', vocab.pre);
  if (vocab.unknownId !== undefined) values.set('tokenizer.ggml.unknown_token_id', vocab.unknownId);
  if (withMerges) values.set('tokenizer.ggml.merges', vocab.merges);
  return new GgufMetadata('test.gguf', values);
}

describe('GGUF tokenizers', () => {
  test('a GGUF written from a directory with tokenizer.json encodes and decodes as the directory', async (t) => {
    const dir = await tempDir(t, 'tok-fixture');
    for (const file of CHECKPOINT_FILES) await copyFile(join(fixtureDir('tiny-mistral'), file), join(dir, file));
    await writeFile(join(dir, 'tokenizer.json'), sentencePieceTokenizerJson());
    const gguf = await fixtureGguf(t, 'tiny-mistral', 'BF16', { dir });
    const fromDir = await loadTokenizer(dir, IDS);
    const fromGguf = await loadModelTokenizer(gguf, IDS);
    for (const text of TEXTS) {
      const ids = fromDir.encode(text);
      assert.ok(ids.length > (text === '' ? 0 : 1), `"${text}" encodes to tokens`);
      assert.deepEqual(fromGguf.encode(text), ids, `encode "${text}"`);
      assert.equal(fromGguf.decode(ids), fromDir.decode(ids), `decode "${text}"`);
    }
  });

  test('without tokenizer.ggml.merges (hub files), the scores give the same merges', () => {
    const source = sentencePieceTokenizerJson();
    const vocab = ggufVocabFromTokenizerJson(source, 'tokenizer.json', 400);
    const fromScores = tokenizerFromHfJson(tokenizerJsonFromGguf(metadataOf(vocab, false)), 'test.gguf', IDS);
    const fromSource = tokenizerFromHfJson(source, 'tokenizer.json', IDS);
    for (const text of TEXTS) assert.deepEqual(fromScores.encode(text), fromSource.encode(text), `encode "${text}"`);
  });

  for (const [kind, source] of [
    ['SentencePiece-style', sentencePieceTokenizerJson()],
    ['byte-level', byteLevelTokenizerJson()],
  ] as const) {
    test(`${kind}: @huggingface/tokenizers reads the converted file and encodes as the source`, () => {
      const vocab = ggufVocabFromTokenizerJson(source, 'tokenizer.json', 600);
      const converted = tokenizerJsonFromGguf(metadataOf(vocab, true));
      const a = new HfTokenizer(JSON.parse(source), {});
      const b = new HfTokenizer(JSON.parse(converted), {});
      for (const text of TEXTS) {
        const ids = a.encode(text, { add_special_tokens: false }).ids;
        assert.deepEqual(b.encode(text, { add_special_tokens: false }).ids, ids, `encode "${text}"`);
        if (ids.length > 0) assert.equal(b.decode(ids), a.decode(ids), `decode "${text}"`);
      }
    });
  }
});
