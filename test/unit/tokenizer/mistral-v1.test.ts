import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CheckpointError, InvalidArgumentError } from '../../../common/errors';
import { loadTokenizer } from '../../../common/tokenizer/load-tokenizer';
import { type Tokenizer } from '../../../common/tokenizer/tokenizer';

describe('Mistral v0.1 vocabulary (no tokenizer.json)', () => {
  let emptyDir: string;
  let tok: Tokenizer;

  before(async () => {
    emptyDir = await mkdtemp(join(tmpdir(), 'bora-v1-'));
    tok = await loadTokenizer(emptyDir, { bosTokenId: 1, eosTokenId: 2 });
  });
  after(async () => {
    await rm(emptyDir, { recursive: true, force: true });
  });

  test('has the v0.1 sizes and special ids', () => {
    assert.equal(tok.vocabSize, 32000);
    assert.equal(tok.bosId, 1);
    assert.equal(tok.eosId, 2);
  });

  test('encodes the reference prompts exactly', () => {
    assert.deepEqual(tok.encode('The capital of France is', { addBos: true }), [1, 415, 5565, 302, 4843, 349]);
    assert.deepEqual(tok.encode('The capital of France is'), [1, 415, 5565, 302, 4843, 349]);
    assert.deepEqual(
      tok.encode('[INST] Write a haiku about etcd leases. [/INST]'),
      [1, 733, 16289, 28793, 12018, 264, 3631, 23550, 684, 911, 2732, 462, 2018, 28723, 733, 28748, 16289, 28793],
    );
    assert.deepEqual(tok.encode('The capital of France is', { addBos: false }), [415, 5565, 302, 4843, 349]);
    assert.deepEqual(tok.encode('', { addBos: true }), [1]);
  });

  test('decode round-trips text, byte-fallback characters and leading spaces', () => {
    for (const text of ['The capital of France is', 'Hello, wörld € 你好', '🦙 𝔘', '  two leading spaces', 'a\nb\tc']) {
      assert.equal(tok.decode(tok.encode(text)), text);
    }
  });

  test('decode keeps a first token that has no leading space marker', () => {
    assert.equal(tok.decode([28725]), ','); // ',' on its own
    assert.equal(tok.decode([22557, 28725]), 'Hello,');
    assert.equal(tok.decode([]), '');
  });

  test('decode leaves out <s>, </s> and <unk>', () => {
    assert.equal(tok.decode([1, 22557, 2]), 'Hello');
    assert.equal(tok.decode([0, 2, 1]), '');
  });

  test('an id outside [0, 32000) is an InvalidArgumentError', () => {
    assert.throws(() => tok.decode([32000]), InvalidArgumentError);
    assert.throws(() => tok.decode([-1]), InvalidArgumentError);
    assert.throws(() => tok.decode([1.5]), InvalidArgumentError);
  });

  test('special ids other than the vocabulary\'s are a CheckpointError naming config.json', async () => {
    await assert.rejects(loadTokenizer(emptyDir, { bosTokenId: 1, eosTokenId: 32000 }), (err: unknown) => {
      assert.ok(err instanceof CheckpointError);
      assert.equal(err.file, join(emptyDir, 'config.json'));
      return true;
    });
  });
});
