/**
 * Fuzzing what a checkpoint directory feeds the parser: the safetensors header (its length
 * prefix and JSON) and config.json. Any bytes give a parsed result that holds together, or a
 * CheckpointError; a length prefix claiming more than the file or the header limit is refused
 * before anything is allocated for it.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as fc from 'fast-check';
import { CheckpointError } from '../../../common/errors';
import { parseModelConfig } from '../../../common/model/config';
import { parseSafetensorsHeader, safetensorsHeaderLength } from '../../../common/model/safetensors';
import { fuzzParameters, typedOrOk } from '../../support/fuzz';

/** A whole file's bytes -> its entries, the way readSafetensorsHeader reads one. */
function parseFile(bytes: Uint8Array): ReturnType<typeof parseSafetensorsHeader> {
  const length = safetensorsHeaderLength('f.safetensors', bytes.subarray(0, 8), bytes.byteLength);
  return parseSafetensorsHeader('f.safetensors', bytes.subarray(8, 8 + length), bytes.byteLength);
}

function withHeader(header: string, dataBytes: number): Uint8Array {
  const json = Buffer.from(header, 'utf8');
  const out = Buffer.alloc(8 + json.byteLength + dataBytes);
  out.writeBigUInt64LE(BigInt(json.byteLength), 0);
  json.copy(out, 8);
  return out;
}

const dim = fc.oneof(fc.integer({ min: 0, max: 6 }), fc.constantFrom(-1, 0.5, 2 ** 53, 1e300, '3', null));
const entry = fc.record({
  dtype: fc.constantFrom('F32', 'BF16', 'F16', 'I64', 7, undefined),
  shape: fc.oneof(fc.array(dim, { maxLength: 3 }), fc.constant('2x2')),
  data_offsets: fc.oneof(fc.tuple(fc.integer({ min: -2, max: 80 }), fc.integer({ min: -2, max: 80 })), fc.array(dim, { maxLength: 3 })),
});
const header = fc.dictionary(fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom('__metadata__', '__proto__', 'constructor')), fc.oneof(entry, fc.jsonValue({ maxDepth: 2 })), { maxKeys: 4 });

describe('fuzz: safetensors header', () => {
  test('any bytes: entries inside the file, or a CheckpointError', () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.tuple(header, fc.integer({ min: 0, max: 80 })).map(([h, n]) => withHeader(JSON.stringify(h), n))), (bytes) => {
        const entries = typedOrOk(() => parseFile(bytes));
        for (const e of entries?.values() ?? []) {
          assert.ok(e.fileOffset >= 8 && e.byteLength >= 0 && e.fileOffset + e.byteLength <= bytes.byteLength, `${e.name} spans outside the file`);
          assert.ok(e.shape.every((d) => Number.isSafeInteger(d) && d >= 0), `${e.name} shape ${e.shape}`);
        }
      }),
      fuzzParameters(1000),
    );
  });

  test('a length prefix past the file or the limit is refused without allocating', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.integer({ min: 8, max: 1 << 20 }), (claimed, fileBytes) => {
        const first8 = Buffer.alloc(8);
        first8.writeBigUInt64LE(claimed, 0);
        const before = process.memoryUsage().arrayBuffers;
        const length = typedOrOk(() => safetensorsHeaderLength('f', first8, fileBytes), 50);
        if (length !== undefined) assert.ok(8 + length <= fileBytes);
        else assert.throws(() => safetensorsHeaderLength('f', first8, fileBytes), CheckpointError);
        assert.ok(process.memoryUsage().arrayBuffers - before < 1 << 20);
      }),
      fuzzParameters(500),
    );
  });
});

const configValue = fc.oneof(fc.integer({ min: -2, max: 64 }), fc.constantFrom(0.5, 1e300, 2 ** 53, -0, null, '8', true, [1], [], 4096));
const configJson = fc.record(
  {
    model_type: fc.constantFrom('mistral', 'mixtral', 'llama', 3),
    hidden_size: configValue,
    num_attention_heads: configValue,
    num_key_value_heads: configValue,
    head_dim: configValue,
    intermediate_size: configValue,
    num_hidden_layers: configValue,
    vocab_size: configValue,
    sliding_window: configValue,
    max_position_embeddings: configValue,
    num_local_experts: configValue,
    num_experts_per_tok: configValue,
    rms_norm_eps: configValue,
    rope_theta: configValue,
    bos_token_id: configValue,
    eos_token_id: configValue,
    hidden_act: fc.constantFrom('silu', 'gelu', undefined),
  },
  { requiredKeys: ['model_type'] },
);

describe('fuzz: config.json', () => {
  test('any text: a config whose sizes are usable, or a CheckpointError', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 40 }), fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v)), configJson.map((c) => JSON.stringify(c))), (text) => {
        const config = typedOrOk(() => parseModelConfig(text, 'config.json'));
        if (config === undefined) return;
        for (const key of ['vocabSize', 'hiddenSize', 'intermediateSize', 'numLayers', 'numHeads', 'numKvHeads', 'headDim', 'maxPositionEmbeddings'] as const) {
          assert.ok(Number.isSafeInteger(config[key]) && config[key] >= 1 && config[key] <= 2 ** 31 - 1, `${key} ${config[key]}`);
        }
        assert.ok(Number.isInteger(config.bosTokenId) && config.bosTokenId >= 0 && config.bosTokenId < config.vocabSize, `bos ${config.bosTokenId}`);
        assert.ok(Number.isInteger(config.eosTokenId) && config.eosTokenId >= 0 && config.eosTokenId < config.vocabSize, `eos ${config.eosTokenId}`);
      }),
      fuzzParameters(1000, [
        // Found by the fuzzer (seed -1541141007): the default bos id 1 outside a vocabulary of 1.
        ['{"model_type":"mistral","hidden_size":1,"num_attention_heads":4096,"head_dim":6,"intermediate_size":1,"num_hidden_layers":1,"vocab_size":1}'],
        // Sizes of 1e300 passed Number.isInteger.
        ['{"model_type":"mistral","hidden_size":1e300,"num_attention_heads":1,"intermediate_size":1,"num_hidden_layers":1,"vocab_size":32}'],
      ]),
    );
  });
});
