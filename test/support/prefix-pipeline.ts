/**
 * Prefix-cache tests' pipeline: StageEngines in this process, each behind an InThreadStage with
 * a prefix cache, handing on what a worker's StageRunner hands on (the computed slices with their
 * token ids and prefix keys, the first stage's evictions); and multi-turn chats driven through a
 * Scheduler, recording every token and the logits that chose it.
 */
import type { Pipeline } from '../../common/generation/pipeline';
import { Scheduler } from '../../common/generation/scheduler';
import type { SliceInput, StageEngine } from '../../common/engine/stage-engine';
import { sequenceId, type SequenceId } from '../../common/ids';
import type { FinalNorm, StageResult } from '../../worker/prefix-stage';
import { InThreadStage } from '../../worker/stage-backend';
import { fixedSource } from './pipeline';

export class PrefixPipeline implements Pipeline {
  readonly depth = 1;
  readonly backends: InThreadStage[];

  constructor(
    stages: readonly StageEngine[],
    /** 0: no prefix cache (the reference). */
    prefixCacheBytes: number,
    public epoch = 1,
    /** The model's final norm, for embeddings. */
    finalNorm?: FinalNorm,
  ) {
    this.backends = stages.map((s) => new InThreadStage(s, prefixCacheBytes, 'test-model', s.isLast ? finalNorm : undefined));
  }

  async run(_batchId: number, slices: readonly SliceInput[]): Promise<Float32Array> {
    return (await this.through(slices, false)).logits!;
  }

  async embed(_batchId: number, slices: readonly SliceInput[]): Promise<Float32Array> {
    return (await this.through(slices, true)).pooled!;
  }

  private async through(slices: readonly SliceInput[], embed: boolean): Promise<StageResult> {
    let out: StageResult | undefined;
    let current = slices;
    let evicted: readonly string[] = [];
    for (const stage of this.backends) {
      out = await stage.forward({ slices: current, hidden: out?.hidden }, { planEpoch: this.epoch, ...(evicted.length > 0 ? { evicted } : {}), ...(embed ? { embed } : {}) });
      current = out.slices ?? current;
      evicted = [...evicted, ...(out.evicted ?? [])];
    }
    return out!;
  }

  async release(ids: readonly SequenceId[]): Promise<void> {
    for (const stage of this.backends) await stage.release(ids);
  }
}

export interface TurnResult {
  readonly tokens: number[];
  /** The logits that chose each token. */
  readonly logits: Float32Array[];
}

/** One greedy generation of `steps` tokens through the scheduler. */
export function generate(scheduler: Scheduler, id: string, promptIds: readonly number[], steps: number): Promise<TurnResult> {
  return new Promise((resolve, reject) => {
    const tokens: number[] = [];
    const logits: Float32Array[] = [];
    scheduler.submit({
      id: sequenceId(id),
      promptIds,
      sampling: { kind: 'greedy' },
      sink: {
        onToken: (t, _index, l) => {
          tokens.push(t);
          logits.push(l.slice());
          if (tokens.length === steps) resolve({ tokens, logits });
          return tokens.length === steps;
        },
        onError: reject,
      },
    });
  });
}

/**
 * `streams` chats over one system prompt, `turns` turns each, run side by side: every turn is a
 * new sequence whose prompt is the whole conversation so far (as a chat API sends it).
 */
export async function chats(pipeline: Pipeline, options: { system: readonly number[]; streams: number; turns: number; steps: number; maxBatchTokens: number; tag: string }): Promise<TurnResult[][]> {
  const scheduler = new Scheduler(fixedSource(pipeline), { maxBatchTokens: options.maxBatchTokens, maxBatchSequences: 8 });
  return Promise.all(
    Array.from({ length: options.streams }, async (_, stream) => {
      const conversation = [...options.system];
      const results: TurnResult[] = [];
      for (let turn = 0; turn < options.turns; turn++) {
        conversation.push(...userTurn(stream, turn));
        const result = await generate(scheduler, `${options.tag}-${stream}-${turn}`, conversation, options.steps);
        conversation.push(...result.tokens);
        results.push(result);
      }
      return results;
    }),
  );
}

/** A user message of 5 to 11 token ids, different for every stream and turn. */
export function userTurn(stream: number, turn: number): number[] {
  return Array.from({ length: 5 + ((stream + 3 * turn) % 7) }, (_, j) => 100 + ((stream * 7919 + turn * 104729 + j * 31) % 31000));
}

/** `count` token ids starting with BOS, the same on every call. */
export function systemPrompt(count: number): number[] {
  return [1, ...Array.from({ length: count - 1 }, (_, j) => 200 + ((j * 4099) % 30000))];
}
