import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { CheckpointError } from '../../../common/errors';
import { Checkpoint, CONFIG_FILE } from '../../../common/model/checkpoint';
import { parseModelConfig } from '../../../common/model/config';
import { fixtureDir, rejection, tempDir, withConfig, withConfigText } from '../../support/checkpoints';

const FILE = '/models/x/config.json';

/** A minimal valid Mistral config; each case changes one thing. */
function mistral(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    model_type: 'mistral',
    vocab_size: 100,
    hidden_size: 64,
    intermediate_size: 128,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    ...overrides,
  };
}

function parse(json: Record<string, unknown>) {
  return parseModelConfig(JSON.stringify(json), FILE);
}

describe('parseModelConfig', () => {
  test('reads the fixtures: tiny-mistral derives head_dim and has a sliding window', async () => {
    const path = join(fixtureDir('tiny-mistral'), CONFIG_FILE);
    const c = parseModelConfig(await readFile(path, 'utf8'), path);
    assert.equal(c.modelType, 'mistral');
    assert.equal(c.headDim, 16); // 64 / 4
    assert.equal(c.slidingWindow, 24);
    assert.equal(c.numExperts, 0);
    assert.equal(c.expertsPerToken, 0);
    assert.equal(c.ropeTheta, 1e6);
    assert.equal(c.maxPositionEmbeddings, 4096);
    assert.equal(c.tieWordEmbeddings, false);
    assert.ok(Object.isFrozen(c));
  });

  test('reads the fixtures: tiny-mixtral has experts and no sliding window', async () => {
    const path = join(fixtureDir('tiny-mixtral'), CONFIG_FILE);
    const c = parseModelConfig(await readFile(path, 'utf8'), path);
    assert.equal(c.modelType, 'mixtral');
    assert.equal(c.slidingWindow, null);
    assert.equal(c.numExperts, 8);
    assert.equal(c.expertsPerToken, 2);
    assert.equal(c.intermediateSize, 96);
    assert.equal(c.numLayers, 4);
  });

  test('head_dim: derived as hidden / heads when absent or null, taken as given otherwise', () => {
    assert.equal(parse(mistral()).headDim, 16);
    assert.equal(parse(mistral({ head_dim: null })).headDim, 16);
    assert.equal(parse(mistral({ head_dim: 32 })).headDim, 32);
    assert.equal(parse(mistral({ hidden_size: 60, head_dim: 8 })).headDim, 8);
  });

  test("sliding_window: absent takes transformers' default (Mistral 4096, Mixtral none), null means unlimited, a number is kept", () => {
    assert.equal(parse(mistral()).slidingWindow, 4096);
    const mixtral = parse(mistral({ model_type: 'mixtral', num_local_experts: 8, num_experts_per_tok: 2 }));
    assert.equal(mixtral.slidingWindow, null);
    assert.equal(mixtral.ropeTheta, 1e6);
    assert.equal(parse(mistral({ sliding_window: null })).slidingWindow, null);
    assert.equal(parse(mistral({ sliding_window: 4096 })).slidingWindow, 4096);
  });

  test('defaults: kv heads = heads, rope_theta 10000, eps 1e-5, bos 1, eos 2; list-valued eos takes the first', () => {
    const c = parse(mistral({ num_key_value_heads: undefined, eos_token_id: [7, 2] }));
    assert.equal(c.numKvHeads, 4);
    assert.equal(c.ropeTheta, 10000);
    assert.equal(c.rmsNormEps, 1e-5);
    assert.equal(c.bosTokenId, 1);
    assert.equal(c.eosTokenId, 7);
  });

  const rejected: { name: string; text: string; mentions: string }[] = [
    { name: 'bad JSON', text: '{"model_type": "mistral",', mentions: 'not valid JSON' },
    { name: 'a JSON array', text: '[1, 2]', mentions: 'JSON object' },
    { name: 'unsupported model_type', text: JSON.stringify(mistral({ model_type: 'llama' })), mentions: 'unsupported model_type "llama"' },
    { name: 'missing model_type', text: JSON.stringify(mistral({ model_type: undefined })), mentions: 'unsupported model_type' },
    { name: 'missing hidden_size', text: JSON.stringify(mistral({ hidden_size: undefined })), mentions: '"hidden_size"' },
    { name: 'missing vocab_size', text: JSON.stringify(mistral({ vocab_size: undefined })), mentions: '"vocab_size"' },
    { name: 'missing num_hidden_layers', text: JSON.stringify(mistral({ num_hidden_layers: undefined })), mentions: '"num_hidden_layers"' },
    { name: 'string intermediate_size', text: JSON.stringify(mistral({ intermediate_size: '128' })), mentions: '"intermediate_size"' },
    { name: 'heads not a multiple of kv heads', text: JSON.stringify(mistral({ num_key_value_heads: 3 })), mentions: 'not a multiple' },
    { name: 'derived head_dim not an integer', text: JSON.stringify(mistral({ hidden_size: 66 })), mentions: 'head_dim 16.5' },
    { name: 'odd head_dim', text: JSON.stringify(mistral({ head_dim: 15 })), mentions: 'head_dim 15' },
    { name: 'sliding_window 0', text: JSON.stringify(mistral({ sliding_window: 0 })), mentions: '"sliding_window"' },
    { name: 'sliding_window as a string', text: JSON.stringify(mistral({ sliding_window: '24' })), mentions: '"sliding_window"' },
    { name: 'hidden_act gelu', text: JSON.stringify(mistral({ hidden_act: 'gelu' })), mentions: 'hidden_act' },
    { name: 'mixtral without num_local_experts', text: JSON.stringify(mistral({ model_type: 'mixtral', num_experts_per_tok: 2 })), mentions: '"num_local_experts"' },
    {
      name: 'mixtral with more experts per token than experts',
      text: JSON.stringify(mistral({ model_type: 'mixtral', num_local_experts: 2, num_experts_per_tok: 3 })),
      mentions: 'exceeds',
    },
  ];
  for (const c of rejected) {
    test(`rejects ${c.name}, naming the file`, () => {
      assert.throws(
        () => parseModelConfig(c.text, FILE),
        (err: unknown) => err instanceof CheckpointError && err.file === FILE && err.message.startsWith(`${FILE}: `) && err.message.includes(c.mentions),
      );
    });
  }
});

describe('Checkpoint.open reports config.json faults with its path', () => {
  test('bad JSON', async (t) => {
    const dir = await withConfigText(t, 'tiny-mistral', '{ "model_type": mistral }');
    const err = await rejection(Checkpoint.open(dir), CheckpointError);
    assert.ok(err.message.startsWith(`${join(dir, CONFIG_FILE)}: not valid JSON`), err.message);
    assert.equal(err.file, join(dir, CONFIG_FILE));
  });

  test('unsupported model_type', async (t) => {
    const dir = await withConfig(t, 'tiny-mistral', (json) => {
      json.model_type = 'gemma';
    });
    const err = await rejection(Checkpoint.open(dir), CheckpointError);
    assert.equal(err.message, `${join(dir, CONFIG_FILE)}: unsupported model_type "gemma": Bora runs "mistral" and "mixtral"`);
  });

  test('missing field', async (t) => {
    const dir = await withConfig(t, 'tiny-mixtral', (json) => {
      delete json.num_experts_per_tok;
    });
    const err = await rejection(Checkpoint.open(dir), CheckpointError);
    assert.equal(err.message, `${join(dir, CONFIG_FILE)}: "num_experts_per_tok" must be a positive integer, got undefined`);
  });

  test('no config.json at all', async (t) => {
    const dir = await tempDir(t, 'no-config');
    const err = await rejection(Checkpoint.open(dir), CheckpointError);
    assert.ok(err.message.startsWith(`${join(dir, CONFIG_FILE)}: cannot read (ENOENT)`), err.message);
  });
});
