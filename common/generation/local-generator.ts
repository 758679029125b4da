/** Generation in this process: the whole model as one stage, no cluster. */
import { StageEngine } from '../engine/stage-engine';
import type { SessionSettings } from '../engine/ort-session';
import { Checkpoint } from '../model/checkpoint';
import { loadTokenizer } from '../tokenizer/tokenizer';
import { Generator } from './generator';
import { LocalPipeline } from './pipeline';
import { Scheduler } from './scheduler';

export interface LocalGenerator {
  readonly generator: Generator;
  close(): Promise<void>;
}

export async function openLocalGenerator(modelDir: string, session?: SessionSettings): Promise<LocalGenerator> {
  const ckpt = await Checkpoint.open(modelDir);
  const tokenizer = await loadTokenizer(modelDir, ckpt.config);
  const engine = await StageEngine.load(ckpt, { start: 0, end: ckpt.config.numLayers }, { session });
  const pipeline = new LocalPipeline([engine]);
  const scheduler = new Scheduler({ current: () => pipeline, next: () => Promise.resolve(pipeline) }, { maxBatchTokens: 512, maxBatchSequences: 32 });
  return { generator: new Generator(scheduler, tokenizer, ckpt.config), close: () => engine.close() };
}
