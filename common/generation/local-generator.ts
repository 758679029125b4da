/** Generation in this process: the whole model as one stage, no cluster. */
import { StageEngine } from '../engine/stage-engine';
import type { ComputeSettings } from '../engine/compute-settings';
import { loadModelTokenizer, openModel } from '../model/open-model';
import { Generator } from './generator';
import { LocalPipeline } from './pipeline';
import { Scheduler } from './scheduler';

export interface LocalGenerator {
  readonly generator: Generator;
  close(): Promise<void>;
}

/** `modelPath`: a checkpoint directory or a GGUF file. */
export async function openLocalGenerator(modelPath: string, compute?: ComputeSettings): Promise<LocalGenerator> {
  const ckpt = await openModel(modelPath);
  const tokenizer = await loadModelTokenizer(modelPath, ckpt.config);
  const engine = await StageEngine.load(ckpt, { start: 0, end: ckpt.config.numLayers }, { compute });
  const pipeline = new LocalPipeline([engine]);
  const scheduler = new Scheduler({ current: () => pipeline, next: () => Promise.resolve(pipeline) }, { maxBatchTokens: 512, maxBatchSequences: 32 });
  return { generator: new Generator(scheduler, tokenizer, ckpt.config), close: () => engine.close() };
}
