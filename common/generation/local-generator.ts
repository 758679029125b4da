/** Generation in this process: the whole model as one stage, no cluster. */
import { StageEngine } from '../engine/stage-engine';
import type { ComputeSettings } from '../engine/compute-settings';
import { Checkpoint } from '../model/checkpoint';
import { loadTokenizer } from '../tokenizer/load-tokenizer';
import { Generator } from './generator';
import { LocalPipeline } from './pipeline';
import { Scheduler } from './scheduler';

export interface LocalGenerator {
  readonly generator: Generator;
  close(): Promise<void>;
}

export async function openLocalGenerator(modelDir: string, compute?: ComputeSettings): Promise<LocalGenerator> {
  const ckpt = await Checkpoint.open(modelDir);
  const tokenizer = await loadTokenizer(modelDir, ckpt.config);
  const engine = await StageEngine.load(ckpt, { start: 0, end: ckpt.config.numLayers }, { compute });
  const pipeline = new LocalPipeline([engine]);
  const scheduler = new Scheduler({ current: () => pipeline, next: () => Promise.resolve(pipeline) }, { maxBatchTokens: 512, maxBatchSequences: 32 });
  return { generator: new Generator(scheduler, tokenizer, ckpt.config), close: () => engine.close() };
}
