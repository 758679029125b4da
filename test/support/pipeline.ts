/**
 * In-process pipelines for tests: a chain of StageEngines handing the hidden state on, and greedy
 * decoding of a batch of prompts through it; and greedy decoding through a scheduler over any
 * Pipeline (a remote one, say).
 */
import type { Pipeline } from '../../common/generation/pipeline';
import { Scheduler, type PipelineSource } from '../../common/generation/scheduler';
import type { LinearBackend } from '../../common/kernels/native-kernels';
import { StageEngine, type SliceInput, type StageOutput } from '../../common/engine/stage-engine';
import type { LayerRange } from '../../common/ids';
import { sequenceId } from '../../common/ids';
import { Checkpoint } from '../../common/model/checkpoint';
import type { WeightSource } from '../../common/model/weight-source';

export async function loadPipeline(ckpt: WeightSource, splits: readonly number[], linear?: LinearBackend): Promise<StageEngine[]> {
  const bounds = [0, ...splits, ckpt.config.numLayers];
  const ranges: LayerRange[] = bounds.slice(1).map((end, i) => ({ start: bounds[i], end }));
  return Promise.all(ranges.map((range) => StageEngine.load(ckpt, range, { compute: { threads: 1, linear } })));
}

export async function runPipeline(stages: readonly StageEngine[], slices: readonly SliceInput[]): Promise<StageOutput> {
  let out: StageOutput | undefined;
  for (const stage of stages) out = await stage.forward({ slices, hidden: out?.hidden });
  return out!;
}

export function argmaxRows(logits: Float32Array, rows: number): number[] {
  const vocab = logits.length / rows;
  return Array.from({ length: rows }, (_, r) => {
    let best = r * vocab;
    for (let i = best + 1; i < (r + 1) * vocab; i++) if (logits[i] > logits[best]) best = i;
    return best - r * vocab;
  });
}

export interface GreedyResult {
  readonly tokens: number[][];
  /** Logits that chose each prompt's first token, (vocab,) per prompt. */
  readonly firstLogits: Float32Array[];
}

/** Greedy decoding of all prompts together, `steps` tokens each. */
export async function greedyBatch(stages: readonly StageEngine[], prompts: readonly (readonly number[])[], steps: number, tag = 'g'): Promise<GreedyResult> {
  const ids = prompts.map((_, i) => sequenceId(`${tag}-${i}`));
  let out = await runPipeline(
    stages,
    prompts.map((p, i) => ({ id: ids[i], startPosition: 0, tokenCount: p.length, tokenIds: p })),
  );
  const vocab = out.logits!.length / prompts.length;
  const firstLogits = prompts.map((_, i) => out.logits!.slice(i * vocab, (i + 1) * vocab));
  const tokens: number[][] = prompts.map(() => []);
  for (let step = 0; step < steps; step++) {
    const next = argmaxRows(out.logits!, prompts.length);
    next.forEach((t, i) => tokens[i].push(t));
    if (step === steps - 1) break;
    out = await runPipeline(
      stages,
      prompts.map((p, i) => ({ id: ids[i], startPosition: p.length + step, tokenCount: 1, tokenIds: [next[i]] })),
    );
  }
  for (const stage of stages) for (const id of ids) stage.release(id);
  return { tokens, firstLogits };
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

/** `count` distinct prompts of 4-12 token ids (BOS first), the same on every call. */
export function syntheticPrompts(count: number, vocab = 32000): number[][] {
  return Array.from({ length: count }, (_, i) => [1, ...Array.from({ length: 3 + (i % 9) }, (_, j) => 50 + ((i * 7919 + j * 104729) % (vocab - 50)))]);
}

/** Each prompt decoded greedily on its own through the whole model in this process. */
export async function greedyAlone(ckpt: Checkpoint, prompts: readonly (readonly number[])[], steps: number): Promise<number[][]> {
  const [engine] = await loadPipeline(ckpt, []);
  try {
    const out: number[][] = [];
    for (const [i, p] of prompts.entries()) out.push((await greedyBatch([engine], [p], steps, `alone${i}`)).tokens[0]);
    return out;
  } finally {
    await engine.close();
  }
}

/** A source that always offers `pipeline` and never a later one. */
export function fixedSource(pipeline: Pipeline): PipelineSource {
  return { current: () => pipeline, next: () => new Promise(() => undefined) };
}

/** Each prompt decoded greedily through `scheduler`, `steps` tokens each, all submitted at once. */
export function greedyThrough(scheduler: Scheduler, prompts: readonly (readonly number[])[], steps: number, tag: string): Promise<number[][]> {
  return Promise.all(
    prompts.map(
      (promptIds, i) =>
        new Promise<number[]>((resolve, reject) => {
          const tokens: number[] = [];
          scheduler.submit({
            id: sequenceId(`${tag}${i}`),
            promptIds,
            sampling: { kind: 'greedy' },
            sink: {
              onToken: (t) => {
                tokens.push(t);
                if (tokens.length === steps) resolve(tokens);
                return tokens.length === steps;
              },
              onError: reject,
            },
          });
        }),
    ),
  );
}

/**
 * Prompts of varied lengths for cluster tests: BOS, then `minTokens + (i % lengthCycle)` spread
 * token ids from `firstId` up (a different `firstId` per test keeps their prompts apart).
 */
export function variedPrompts(count: number, o: { readonly minTokens: number; readonly lengthCycle: number; readonly firstId: number; readonly idSpan?: number }): number[][] {
  const span = o.idSpan ?? 30000;
  return Array.from({ length: count }, (_, i) => [1, ...Array.from({ length: o.minTokens + (i % o.lengthCycle) }, (_, j) => o.firstId + ((i * 7919 + j * 104729) % span))]);
}

/** The fault-free reference of a cluster test: greedy tokens of the model in one process. */
export async function inProcessGreedy(modelDir: string, prompts: readonly (readonly number[])[], steps: number): Promise<number[][]> {
  const [engine] = await loadPipeline(await Checkpoint.open(modelDir), []);
  try {
    return (await greedyBatch([engine], prompts, steps, 'ref')).tokens;
  } finally {
    await engine.close();
  }
}
