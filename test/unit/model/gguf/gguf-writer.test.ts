/**
 * The GGUF writer's type choices and its quantizer seam: Q4_K_M follows llama-quantize's rule
 * (Q6_K for the head and for attn_v / ffn_down on use_more_bits layers, Q8_0 attn_v with 8
 * experts, 32-block fallback for rows that are not whole 256-blocks); the one injected quantizer
 * function gets every quantized matrix; and `bora quantize` writes a file Bora reads, exiting 2
 * on a bad type and on a bad GGUF given as a model.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import { Checkpoint } from '../../../../common/model/checkpoint';
import { bf16ToF32, QUANT_BLOCK, toFloat32, type QuantDtype } from '../../../../common/model/dtype';
import { readFile } from 'node:fs/promises';
import { defaultQuantizeRows } from '../../../../common/model/gguf/quantize-rows';
import { GgufCheckpoint } from '../../../../common/model/gguf/gguf-checkpoint';
import { q4KMType, useMoreBits } from '../../../../common/model/gguf/q4-k-m';
import { makeModel } from '../../../../common/model/make-model';
import { fixtureDir, tempDir } from '../../../support/checkpoints';
import { boraBin } from '../../../support/cluster';
import { fixtureGguf, patchedCopy, setU32 } from '../../../support/gguf';

const run = promisify(execFile);

describe('Q4_K_M type choice', () => {
  const role = (ggufName: string, o: { cols?: number; numLayers?: number; numExperts?: number; tiedHead?: boolean } = {}) =>
    q4KMType({ ggufName, cols: o.cols ?? 4096, numLayers: o.numLayers ?? 32, numExperts: o.numExperts ?? 0, tiedHead: o.tiedHead ?? false });

  test("use_more_bits on 32 layers: the first and last 4, and every third between", () => {
    const more = Array.from({ length: 32 }, (_, l) => l).filter((l) => useMoreBits(l, 32));
    assert.deepEqual(more, [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]);
  });

  test('Mistral-7B-like: head Q6_K, attn_v and ffn_down Q6_K on use_more_bits layers, the rest Q4_K', () => {
    assert.equal(role('output.weight'), 'Q6_K');
    assert.equal(role('token_embd.weight'), 'Q4_K');
    assert.equal(role('token_embd.weight', { tiedHead: true }), 'Q6_K');
    assert.equal(role('blk.0.attn_v.weight'), 'Q6_K');
    assert.equal(role('blk.4.attn_v.weight'), 'Q4_K');
    assert.equal(role('blk.6.ffn_down.weight'), 'Q6_K');
    assert.equal(role('blk.7.ffn_down.weight'), 'Q4_K');
    for (const n of ['attn_q', 'attn_k', 'attn_output', 'ffn_gate', 'ffn_up']) assert.equal(role(`blk.0.${n}.weight`), 'Q4_K', n);
  });

  test('Mixtral-like (8 experts): attn_v Q8_0, stacked ffn_down_exps by layer, attn_output Q6_K', () => {
    assert.equal(role('blk.5.attn_v.weight', { numExperts: 8 }), 'Q8_0');
    assert.equal(role('blk.0.ffn_down_exps.weight', { numExperts: 8 }), 'Q6_K');
    assert.equal(role('blk.4.ffn_down_exps.weight', { numExperts: 8 }), 'Q4_K');
    assert.equal(role('blk.4.ffn_gate_exps.weight', { numExperts: 8 }), 'Q4_K');
    assert.equal(role('blk.4.attn_output.weight', { numExperts: 8 }), 'Q6_K');
  });

  test('rows that are not whole 256-blocks fall back to Q8_0', () => {
    assert.equal(role('blk.1.ffn_up.weight', { cols: 14336 + 32 }), 'Q8_0');
    assert.equal(role('output.weight', { cols: 64 }), 'Q8_0');
  });
});

describe('the injected quantizer', () => {
  test('a Q4_K_M file of a 256-wide model: every quantized matrix goes through the one function, its bytes stored as returned', async (t) => {
    const dir = join(await tempDir(t, 'q4km'), 'model');
    await makeModel({ arch: 'mistral', hiddenSize: 256, numLayers: 8, numHeads: 4, numKvHeads: 2, intermediateSize: 512, vocabSize: 512, dtype: 'bf16', seed: 3, slidingWindow: null, outDir: dir });
    const calls: { type: QuantDtype; rows: number; cols: number }[] = [];
    const quantize = (type: QuantDtype, values: Float32Array | Uint16Array, rows: number, cols: number): Uint8Array => {
      assert.equal(values.length, rows * cols);
      calls.push({ type, rows, cols });
      const out = new Uint8Array(rows * (cols / QUANT_BLOCK[type].elements) * QUANT_BLOCK[type].bytes);
      out.fill(calls.length % 251);
      return out;
    };
    const path = await fixtureGguf(t, 'tiny-mistral', 'Q4_K_M', { dir, quantize });
    const gguf = await GgufCheckpoint.open(path);
    // 8 layers x 7 matrices, the embedding and the head.
    assert.equal(calls.length, 8 * 7 + 2);
    assert.equal(gguf.entry('lm_head.weight').dtype, 'Q6_K');
    assert.equal(gguf.entry('model.embed_tokens.weight').dtype, 'Q4_K');
    const vTypes = Array.from({ length: 8 }, (_, l) => gguf.entry(`model.layers.${l}.self_attn.v_proj.weight`).dtype);
    assert.deepEqual(vTypes, Array.from({ length: 8 }, (_, l) => (useMoreBits(l, 8) ? 'Q6_K' : 'Q4_K')));
    const head = await gguf.readRaw('lm_head.weight');
    const headCall = calls.findIndex((c) => c.type === 'Q6_K' && c.rows === 512 && c.cols === 256);
    assert.ok(headCall >= 0);
    assert.ok(head.bytes.every((b) => b === (headCall + 1) % 251), 'the head holds the bytes the quantizer returned');
  });

  test('bf16 weights reach the quantizer as bf16 bits, and the file is byte for byte the one quantized from float32', async (t) => {
    const dir = join(await tempDir(t, 'bf16-direct'), 'model');
    await makeModel({ arch: 'mistral', hiddenSize: 256, numLayers: 2, numHeads: 4, numKvHeads: 2, intermediateSize: 512, vocabSize: 512, dtype: 'bf16', seed: 5, slidingWindow: null, outDir: dir });
    const native = defaultQuantizeRows();
    const kinds = new Set<string>();
    const viaF32 = (type: QuantDtype, values: Float32Array | Uint16Array, rows: number, cols: number): Uint8Array => {
      kinds.add(values.constructor.name);
      return native(type, values instanceof Uint16Array ? bf16ToF32(values) : values, rows, cols);
    };
    const direct = await readFile(await fixtureGguf(t, 'tiny-mistral', 'Q4_K_M', { dir }));
    const widened = await readFile(await fixtureGguf(t, 'tiny-mistral', 'Q4_K_M', { dir, quantize: viaF32 }));
    assert.deepEqual([...kinds], ['Uint16Array']);
    assert.ok(direct.equals(widened), 'the bf16 path writes the same bytes');
  });

  test('Q4_K_M of a 256-wide model: K-quant blocks that decode near the weights, Q6_K where the rule asks', async (t) => {
    const dir = join(await tempDir(t, 'q4km-native'), 'model');
    await makeModel({ arch: 'mistral', hiddenSize: 256, numLayers: 2, numHeads: 4, numKvHeads: 2, intermediateSize: 512, vocabSize: 512, dtype: 'bf16', seed: 3, slidingWindow: null, outDir: dir });
    const gguf = await GgufCheckpoint.open(await fixtureGguf(t, 'tiny-mistral', 'Q4_K_M', { dir }));
    const source = await Checkpoint.open(dir);
    const seen = new Set<string>();
    for (const name of source.tensorNames) {
      if (source.entry(name).shape.length !== 2) continue;
      const raw = await gguf.readRaw(name);
      seen.add(raw.dtype);
      const want = await source.readF32(name);
      const got = toFloat32(raw.bytes, raw.dtype);
      let err = 0;
      let norm = 0;
      for (let i = 0; i < want.length; i++) {
        err += (got[i] - want[i]) ** 2;
        norm += want[i] ** 2;
      }
      // Uniform 4-bit steps over a block's range of Gaussian weights: about 8% RMS; 6-bit about 2%.
      const bound = raw.dtype === 'Q6_K' ? 0.025 : 0.09;
      assert.ok(Math.sqrt(err / norm) < bound, `${name} (${raw.dtype}): relative RMS error ${Math.sqrt(err / norm).toFixed(4)}`);
    }
    assert.deepEqual([...seen].sort(), ['Q4_K', 'Q6_K']);
  });
});

describe('bora quantize and bad GGUF files on the command line', () => {
  test('bora quantize --type q8_0 writes a file that bora reads; a bad --type exits 2', async (t) => {
    const out = join(await tempDir(t, 'quantize-cli'), 'm.gguf');
    await run(process.execPath, [boraBin(), 'quantize', '--model', fixtureDir('tiny-mistral'), '--type', 'q8_0', '--out', out]);
    const gguf = await GgufCheckpoint.open(out);
    assert.equal(gguf.entry('model.layers.0.self_attn.q_proj.weight').dtype, 'Q8_0');
    const bad = await run(process.execPath, [boraBin(), 'quantize', '--model', fixtureDir('tiny-mistral'), '--type', 'q3_k', '--out', out]).then(
      () => undefined,
      (e: { code: number; stderr: string }) => e,
    );
    assert.equal(bad?.code, 2);
    assert.match(bad!.stderr, /--type must be one of/);
  });

  test('bora generate --model BAD.gguf exits 2 naming the file and the tensor', async (t) => {
    const bad = await patchedCopy(t, await fixtureGguf(t, 'tiny-mistral', 'BF16'), (b) => setU32(b, 'llama.embedding_length', 32));
    const failed = await run(process.execPath, [boraBin(), 'generate', '--model', bad, '--prompt-ids', '1,2,3', '--max-tokens', '2']).then(
      () => undefined,
      (e: { code: number; stderr: string }) => e,
    );
    assert.equal(failed?.code, 2);
    assert.match(failed!.stderr, /bad\.gguf: tensor token_embd\.weight: shape \[32000, 64\] disagrees with the metadata/);
  });
});
