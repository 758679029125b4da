/**
 * bora quantize: writes a checkpoint directory as a GGUF file that llama.cpp and Bora load
 * (--type q8_0 | q4_0 | q4_k_m, or f32 | f16 | bf16 unquantized). The directory's tokenizer.json,
 * when it has one, goes into the file's metadata.
 */
import { stat } from 'node:fs/promises';
import { InvalidArgumentError } from '../common/errors';
import { Checkpoint } from '../common/model/checkpoint';
import { isGgufPath } from '../common/model/open-model';
import { isGgufWeightType, writeGguf, GGUF_WEIGHT_TYPES } from '../common/model/gguf/gguf-writer';
import { parseFlags, requireString } from './args';

const FLAGS = {
  model: { type: 'string' },
  type: { type: 'string' },
  out: { type: 'string' },
  name: { type: 'string' },
} as const;

export async function quantizeCommand(argv: string[]): Promise<void> {
  const { values: v } = parseFlags(argv, FLAGS);
  const modelDir = requireString(v.model, '--model');
  const type = requireString(v.type, '--type').toUpperCase();
  if (!isGgufWeightType(type)) throw new InvalidArgumentError(`--type must be one of ${GGUF_WEIGHT_TYPES.map((t) => t.toLowerCase()).join(', ')}, got "${v.type}"`);
  const out = requireString(v.out, '--out');
  if (!isGgufPath(out)) throw new InvalidArgumentError(`--out must name a .gguf file, got "${out}"`);
  if (isGgufPath(modelDir)) throw new InvalidArgumentError(`--model must be a checkpoint directory (config.json + safetensors), got the GGUF file "${modelDir}"`);
  const ckpt = await Checkpoint.open(modelDir);
  const started = performance.now();
  const written = await writeGguf(ckpt, out, type, { name: v.name });
  const seconds = (performance.now() - started) / 1000;
  const outBytes = (await stat(out)).size;
  console.error(
    `wrote ${out}: ${written.tensorCount} tensors, ${(outBytes / 2 ** 20).toFixed(1)} MiB from ${(written.sourceBytes / 2 ** 20).toFixed(1)} MiB ` +
      `in ${seconds.toFixed(1)} s (${(written.sourceBytes / 1e6 / seconds).toFixed(0)} MB/s of input)`,
  );
}
