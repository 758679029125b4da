/** bora make-model: writes a hub-format checkpoint of any size with seeded random weights. */
import { InvalidArgumentError } from '../common/errors';
import { isWeightDtype } from '../common/model/checkpoint-writer';
import { makeModel } from '../common/model/make-model';
import { intFlag, parseFlags, requireString } from './args';

const FLAGS = {
  arch: { type: 'string' },
  hidden: { type: 'string' },
  layers: { type: 'string' },
  heads: { type: 'string' },
  'kv-heads': { type: 'string' },
  intermediate: { type: 'string' },
  experts: { type: 'string' },
  'top-k': { type: 'string' },
  'sliding-window': { type: 'string' },
  'head-dim': { type: 'string' },
  vocab: { type: 'string' },
  dtype: { type: 'string' },
  seed: { type: 'string' },
  'shard-bytes': { type: 'string' },
  out: { type: 'string' },
} as const;

export async function makeModelCommand(argv: string[]): Promise<void> {
  const { values: v } = parseFlags(argv, FLAGS);
  const arch = requireString(v.arch, '--arch');
  if (arch !== 'mistral' && arch !== 'mixtral') throw new InvalidArgumentError(`--arch must be mistral or mixtral, got "${arch}"`);
  const dtype = v.dtype ?? 'bf16';
  if (!isWeightDtype(dtype)) throw new InvalidArgumentError(`--dtype must be bf16, f16 or f32, got "${dtype}"`);
  const started = Date.now();
  const made = await makeModel({
    arch,
    hiddenSize: intFlag(v.hidden, '--hidden'),
    numLayers: intFlag(v.layers, '--layers'),
    numHeads: intFlag(v.heads, '--heads'),
    numKvHeads: intFlag(v['kv-heads'], '--kv-heads', intFlag(v.heads, '--heads')),
    intermediateSize: intFlag(v.intermediate, '--intermediate'),
    numExperts: arch === 'mixtral' ? intFlag(v.experts, '--experts', 8) : v.experts === undefined ? undefined : intFlag(v.experts, '--experts'),
    expertsPerToken: arch === 'mixtral' ? intFlag(v['top-k'], '--top-k', 2) : v['top-k'] === undefined ? undefined : intFlag(v['top-k'], '--top-k'),
    slidingWindow: v['sliding-window'] === undefined ? null : intFlag(v['sliding-window'], '--sliding-window'),
    headDim: v['head-dim'] === undefined ? undefined : intFlag(v['head-dim'], '--head-dim'),
    vocabSize: intFlag(v.vocab, '--vocab', 32000),
    dtype,
    seed: intFlag(v.seed, '--seed', 0),
    maxShardBytes: v['shard-bytes'] === undefined ? undefined : intFlag(v['shard-bytes'], '--shard-bytes'),
    outDir: requireString(v.out, '--out'),
  });
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  console.error(`wrote ${v.out}: ${(made.parameterCount / 1e6).toFixed(1)} M parameters, ${(made.bytes / 2 ** 20).toFixed(1)} MiB of ${dtype} in ${seconds} s`);
}
