/**
 * llama.cpp itself loads the GGUF files `bora quantize` writes: Q8_0, Q4_0 and Q4_K_M of the tiny
 * fixtures (and of a 256-wide checkpoint, so that Q4_K_M holds real Q4_K and Q6_K blocks rather
 * than the 32-block fallback), each run greedily for a few tokens through node-llama-cpp and
 * compared with Bora on the same file: the step-0 logits (node-llama-cpp gives llama.cpp's as
 * probabilities, centred logits compared) and the first token.
 *
 * node-llama-cpp is not a dependency of Bora: the test runs where BORA_LLAMA_DIR names its
 * package directory (e.g. /tmp/llama/node_modules/node-llama-cpp) and is skipped, with that
 * reason, where it does not (CI).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { centredLogitCosine, llamaGreedy, loadNodeLlamaCpp, type NlcLlama } from '../../../../bench/node-llama-cpp';
import { StageEngine } from '../../../../common/engine/stage-engine';
import { sequenceId } from '../../../../common/ids';
import { GgufCheckpoint } from '../../../../common/model/gguf/gguf-checkpoint';
import { makeModel } from '../../../../common/model/make-model';
import { fixtureDir, tempDir } from '../../../support/checkpoints';
import { boraBin } from '../../../support/cluster';

const run = promisify(execFile);
const LLAMA_DIR = process.env.BORA_LLAMA_DIR;
const SKIP = LLAMA_DIR === undefined || LLAMA_DIR === '' ? 'BORA_LLAMA_DIR is not set: node-llama-cpp is not installed here (not a dependency of Bora)' : false;
const PROMPT = [1, 334, 1200, 77, 9000, 15, 4242, 31000];
const NEW_TOKENS = 4;

/** Bora's step-0 logits on `file` for PROMPT (in process, native kernels). */
async function boraFirstLogits(file: string): Promise<Float32Array> {
  const gguf = await GgufCheckpoint.open(file);
  const engine = await StageEngine.load(gguf, { start: 0, end: gguf.config.numLayers }, { compute: { threads: 1, linear: 'native' } });
  try {
    const id = sequenceId('llama-load');
    const out = await engine.forward({ slices: [{ id, startPosition: 0, tokenCount: PROMPT.length, tokenIds: PROMPT }] });
    return out.logits!;
  } finally {
    await engine.close();
  }
}

const argmax = (v: Float32Array): number => v.reduce((best, x, i) => (x > v[best] ? i : best), 0);

describe('llama.cpp loads what bora quantize writes', { skip: SKIP }, () => {
  let llama: NlcLlama;
  let wideDir: string;

  before(async () => {
    const nlc = await loadNodeLlamaCpp(LLAMA_DIR!);
    assert.ok(nlc !== undefined, `BORA_LLAMA_DIR=${LLAMA_DIR} holds no node-llama-cpp package.json`);
    llama = await nlc.module.getLlama({ gpu: false, build: 'never', skipDownload: true, maxThreads: 2, logLevel: 'error' });
  });
  after(async () => {
    await llama?.dispose();
  });

  const cases: { source: 'tiny-mistral' | 'tiny-mixtral' | 'wide-mistral'; type: 'q8_0' | 'q4_0' | 'q4_k_m'; kinds: string[] }[] = [
    { source: 'tiny-mistral', type: 'q8_0', kinds: ['Q8_0'] },
    { source: 'tiny-mistral', type: 'q4_0', kinds: ['Q4_0'] },
    { source: 'tiny-mistral', type: 'q4_k_m', kinds: ['Q8_0'] },
    { source: 'tiny-mixtral', type: 'q4_0', kinds: ['Q4_0'] },
    { source: 'wide-mistral', type: 'q4_k_m', kinds: ['Q4_K', 'Q6_K'] },
  ];
  for (const c of cases) {
    test(`${c.source} ${c.type}: llama.cpp generates ${NEW_TOKENS} tokens; its step-0 logits are Bora's on the same file`, async (t) => {
      let modelDir: string;
      if (c.source === 'wide-mistral') {
        wideDir ??= join(await tempDir(t, 'wide'), 'model');
        await makeModel({ arch: 'mistral', hiddenSize: 256, numLayers: 2, numHeads: 4, numKvHeads: 2, intermediateSize: 512, vocabSize: 32000, dtype: 'bf16', seed: 7, slidingWindow: null, outDir: wideDir });
        modelDir = wideDir;
      } else modelDir = fixtureDir(c.source);
      const file = join(await tempDir(t, 'llama-load'), `${c.source}-${c.type}.gguf`);
      await run(process.execPath, [boraBin(), 'quantize', '--model', modelDir, '--type', c.type, '--out', file]);
      const gguf = await GgufCheckpoint.open(file);
      const kinds = new Set(gguf.tensorNames.map((n) => gguf.entry(n).dtype).filter((d) => d !== 'F32'));
      assert.deepEqual([...kinds].sort(), [...c.kinds].sort(), 'the file holds the quantized types this case is about');

      const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
      try {
        const context = await model.createContext({ contextSize: 64, batchSize: 32, sequences: 1, threads: { ideal: 1, min: 1 } });
        const { tokens, firstProbabilities } = await llamaGreedy(context.getSequence(), PROMPT, NEW_TOKENS);
        await context.dispose();
        assert.equal(tokens.length, NEW_TOKENS);
        assert.ok(tokens.every((id) => Number.isInteger(id) && id >= 0 && id < gguf.config.vocabSize), `tokens ${tokens.join(',')}`);
        const bora = await boraFirstLogits(file);
        const { cosine, underflowed } = centredLogitCosine(bora, firstProbabilities);
        // llama.cpp multiplies quantized weights by activations quantized to 8 bits (Bora does
        // not), so the logits agree closely but not to float32 rounding.
        assert.ok(cosine > 0.99, `centred step-0 logit cosine ${cosine.toFixed(5)} (${underflowed} tokens underflowed)`);
        assert.equal(tokens[0], argmax(bora), 'the first greedy token');
      } finally {
        await model.dispose();
      }
    });
  }
});
