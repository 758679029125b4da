/**
 * node-llama-cpp, the outside reference, loaded from an install outside the repository (it is not
 * a dependency of Bora): the slice of its API that bench:llama and the llama.cpp load test use,
 * and the comparisons they make with Bora on one GGUF file.
 *
 * node-llama-cpp exposes no raw logits. What it gives per generated token is the full
 * vocabulary's probabilities (evaluateWithMetadata({ probabilities: true })), the softmax of
 * llama.cpp's logits; their logarithms are the logits less one constant (the log of the
 * normalizer), so the logit cosine is taken between mean-centred vectors: llama.cpp's log
 * probabilities and Bora's logits, each less its own mean. A token whose probability underflowed
 * to 0 has no logarithm and is left out of both vectors (and counted).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

export type Token = number;

export interface NlcEvaluateOutput {
  readonly token: Token;
  readonly probabilities: Map<Token, number>;
}

export interface NlcSequence {
  evaluate(tokens: Token[], options: { temperature: number; yieldEogToken: boolean }): AsyncGenerator<Token, void, void | Token | Token[]>;
  evaluateWithMetadata(
    tokens: Token[],
    metadata: { probabilities: true },
    options: { temperature: number; yieldEogToken: boolean },
  ): AsyncGenerator<NlcEvaluateOutput, void, void | Token | Token[]>;
  clearHistory(): Promise<void>;
}

export interface NlcContext {
  readonly contextSize: number;
  readonly batchSize: number;
  readonly currentThreads: number;
  readonly flashAttention: boolean | 'auto';
  getSequence(): NlcSequence;
  dispose(): Promise<void>;
}

export interface NlcModel {
  readonly size: number;
  createContext(options: { contextSize: number; batchSize: number; sequences: number; threads: { ideal: number; min: number } }): Promise<NlcContext>;
  dispose(): Promise<void>;
}

export interface NlcLlama {
  readonly buildType: string;
  readonly llamaCppRelease: { readonly repo: string; readonly release: string };
  readonly systemInfo: string;
  loadModel(options: { modelPath: string; gpuLayers: number; useMmap?: boolean }): Promise<NlcModel>;
  dispose(): Promise<void>;
}

export interface NodeLlamaCpp {
  getLlama(options: { gpu: false; build: 'never'; skipDownload: true; maxThreads: number; logLevel: 'warn' | 'error' }): Promise<NlcLlama>;
}

/** A real dynamic import: tsc would turn `import()` into `require()`, which cannot load ESM. */
const importEsm = new Function('specifier', 'return import(specifier)') as (specifier: string) => Promise<unknown>;

/** node-llama-cpp from its package directory (…/node_modules/node-llama-cpp), or undefined when not there. */
export async function loadNodeLlamaCpp(dir: string): Promise<{ module: NodeLlamaCpp; version: string } | undefined> {
  const packageJson = join(dir, 'package.json');
  if (!existsSync(packageJson)) return undefined;
  const pkg = JSON.parse(readFileSync(packageJson, 'utf8')) as { version: string; main?: string };
  const module = (await importEsm(pathToFileURL(join(dir, pkg.main ?? 'dist/index.js')).href)) as NodeLlamaCpp;
  return { module, version: pkg.version };
}

/** llama.cpp's greedy continuation of `prompt`: `count` tokens, and the step-0 probabilities. */
export async function llamaGreedy(sequence: NlcSequence, prompt: Token[], count: number): Promise<{ tokens: Token[]; firstProbabilities: Map<Token, number> }> {
  await sequence.clearHistory();
  const generator = sequence.evaluateWithMetadata(prompt, { probabilities: true }, { temperature: 0, yieldEogToken: true });
  const tokens: Token[] = [];
  let firstProbabilities: Map<Token, number> | undefined;
  while (tokens.length < count) {
    const step = await generator.next();
    if (step.done === true) throw new Error(`node-llama-cpp stopped after ${tokens.length} of ${count} tokens`);
    tokens.push(step.value.token);
    firstProbabilities ??= step.value.probabilities;
  }
  await generator.return();
  return { tokens, firstProbabilities: firstProbabilities! };
}

/** How many of the first tokens agree, position by position, before the first disagreement and in all. */
export function tokenAgreement(a: readonly Token[], b: readonly Token[]): { prefix: number; same: number; of: number } {
  const of = Math.min(a.length, b.length);
  let prefix = 0;
  while (prefix < of && a[prefix] === b[prefix]) prefix++;
  let same = 0;
  for (let i = 0; i < of; i++) if (a[i] === b[i]) same++;
  return { prefix, same, of };
}

/**
 * Cosine between Bora's step-0 logits and llama.cpp's (as log probabilities), both mean-centred
 * over the tokens whose llama.cpp probability is above 0.
 */
export function centredLogitCosine(boraLogits: Float32Array, llamaProbabilities: Map<Token, number>): { cosine: number; tokens: number; underflowed: number } {
  const ids: number[] = [];
  for (let id = 0; id < boraLogits.length; id++) if ((llamaProbabilities.get(id) ?? 0) > 0) ids.push(id);
  let boraMean = 0;
  let llamaMean = 0;
  for (const id of ids) {
    boraMean += boraLogits[id];
    llamaMean += Math.log(llamaProbabilities.get(id)!);
  }
  boraMean /= ids.length;
  llamaMean /= ids.length;
  let dot = 0;
  let boraNorm = 0;
  let llamaNorm = 0;
  for (const id of ids) {
    const b = boraLogits[id] - boraMean;
    const l = Math.log(llamaProbabilities.get(id)!) - llamaMean;
    dot += b * l;
    boraNorm += b * b;
    llamaNorm += l * l;
  }
  return { cosine: dot / Math.sqrt(boraNorm * llamaNorm), tokens: ids.length, underflowed: boraLogits.length - ids.length };
}
