/**
 * Fuzzing tokenizer input: any string (lone surrogates, control characters, text that looks like
 * special tokens) encodes to ids inside the vocabulary, and any ids inside it decode, within a
 * per-case time bound.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import * as fc from 'fast-check';
import { parseModelConfig, type ModelConfig } from '../../../common/model/config';
import { loadTokenizer } from '../../../common/tokenizer/load-tokenizer';
import type { Tokenizer } from '../../../common/tokenizer/tokenizer';
import { fixtureDir } from '../../support/checkpoints';
import { fuzzParameters, typedOrOk } from '../../support/fuzz';

const text = fc.oneof(
  fc.string({ maxLength: 40, unit: 'binary' }),
  fc.string({ maxLength: 40, unit: 'grapheme' }),
  fc.array(fc.constantFrom('<s>', '</s>', '[INST]', '<unk>', '\u2581', ' ', '\n', '\uD800', '\uDFFF', '\u0000', 'é', '🦊'), { maxLength: 12 }).map((a) => a.join('')),
);

describe('fuzz: tokenizer input', () => {
  let tokenizer: Tokenizer;
  let config: ModelConfig;
  before(async () => {
    const dir = fixtureDir('tiny-mistral');
    config = parseModelConfig(readFileSync(join(dir, 'config.json'), 'utf8'), 'config.json');
    tokenizer = await loadTokenizer(dir, config);
  });

  test('any text encodes to ids in the vocabulary, and they decode', () => {
    fc.assert(
      fc.property(text, fc.boolean(), (s, addBos) => {
        const ids = typedOrOk(() => tokenizer.encode(s, { addBos }));
        if (ids === undefined) return;
        assert.ok(ids.every((id) => Number.isInteger(id) && id >= 0 && id < config.vocabSize), `ids ${ids}`);
        typedOrOk(() => tokenizer.decode(ids));
      }),
      fuzzParameters(1000),
    );
  });

  test('any ids decode or are refused with a typed error', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.integer({ min: 0, max: config.vocabSize - 1 }), fc.integer({ min: -2, max: 2 ** 32 })), { maxLength: 20 }), (ids) => {
        typedOrOk(() => tokenizer.decode(ids));
      }),
      fuzzParameters(500),
    );
  });
});
