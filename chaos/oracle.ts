/**
 * The scenarios' oracle: each request's greedy tokens computed in this process, independently of
 * any cluster, by one StageEngine over the whole model (every layer, the embedding and the head,
 * every expert of a Mixtral model), as test/golden checks the engine. Prompts are decoded together
 * in one batch (golden proves batching does not change greedy tokens); `ignoreEos` requests always
 * produce exactly `maxTokens` tokens, so the oracle runs every prompt for its full length.
 *
 * A cluster run is then compared with this, not with another run of the same cluster: a fault
 * that corrupted every run of the cluster the same way would otherwise go unseen.
 */
import { StageEngine, type StageOutput } from '../common/engine/stage-engine';
import { sequenceId } from '../common/ids';
import { Checkpoint } from '../common/model/checkpoint';
import type { RequestSpec } from './workload';

/** Row-wise argmax of (rows, vocab) logits. */
export function argmaxRows(logits: Float32Array, rows: number): number[] {
  const vocab = logits.length / rows;
  return Array.from({ length: rows }, (_, r) => {
    let best = r * vocab;
    for (let i = best + 1; i < (r + 1) * vocab; i++) if (logits[i] > logits[best]) best = i;
    return best - r * vocab;
  });
}

/** Lane -> its greedy tokens, for every request with id prompts (text prompts have no oracle here). */
export async function inProcessOracle(modelDir: string, requests: readonly RequestSpec[]): Promise<Map<number, number[]>> {
  const specs = requests.filter((r) => r.promptText === undefined);
  const out = new Map<number, number[]>();
  if (specs.length === 0) return out;
  const ckpt = await Checkpoint.open(modelDir);
  const engine = await StageEngine.load(ckpt, { start: 0, end: ckpt.config.numLayers }, { compute: { threads: 1 } });
  try {
    const ids = specs.map((s) => sequenceId(`oracle-${s.lane}`));
    const tokens: number[][] = specs.map(() => []);
    let result: StageOutput = await engine.forward({ slices: specs.map((s, i) => ({ id: ids[i], startPosition: 0, tokenCount: s.promptIds.length, tokenIds: s.promptIds })) });
    const steps = Math.max(...specs.map((s) => s.maxTokens));
    for (let step = 0; ; step++) {
      const next = argmaxRows(result.logits!, specs.length);
      next.forEach((t, i) => tokens[i].push(t));
      if (step === steps - 1) break;
      result = await engine.forward({ slices: specs.map((s, i) => ({ id: ids[i], startPosition: s.promptIds.length + step, tokenCount: 1, tokenIds: [next[i]] })) });
    }
    specs.forEach((s, i) => out.set(s.lane, tokens[i].slice(0, s.maxTokens)));
    return out;
  } finally {
    engine.releaseAll();
    await engine.close();
  }
}
