/**
 * The one way to open a model given on the command line: a checkpoint directory (config.json +
 * safetensors) or a GGUF file. Both are WeightSources with the same tensor names and layouts;
 * this module also gives what else a node needs from either: the config.json text served to
 * workers, each tensor's stored size (placement packs quantized models by their real size) and
 * the tokenizer.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CheckpointError } from '../errors';
import { loadTokenizer, tokenizerFromHfJson } from '../tokenizer/load-tokenizer';
import type { SpecialTokenIds, Tokenizer } from '../tokenizer/tokenizer';
import { Checkpoint, CONFIG_FILE } from './checkpoint';
import { tensorBytes, type TensorDtype } from './dtype';
import { GgufCheckpoint } from './gguf/gguf-checkpoint';
import { GgufMetadata, readGgufHeader } from './gguf/gguf-header';
import { tokenizerJsonFromGguf } from './gguf/gguf-tokenizer';

/** A model opened from a directory or a GGUF file. */
export type ModelCheckpoint = Checkpoint | GgufCheckpoint;

/** Whether `path` names a GGUF file (by its extension, as llama.cpp's tools do). */
export function isGgufPath(path: string): boolean {
  return /\.gguf$/i.test(path);
}

export function openModel(path: string): Promise<ModelCheckpoint> {
  return isGgufPath(path) ? GgufCheckpoint.open(path) : Checkpoint.open(path);
}

/** Where the model came from: the directory or the file. */
export function modelPath(model: ModelCheckpoint): string {
  return model instanceof Checkpoint ? model.dir : model.path;
}

/** The config.json text of the model (for a GGUF file: the one its metadata implies). */
export async function modelConfigJson(model: ModelCheckpoint): Promise<string> {
  if (model instanceof GgufCheckpoint) return JSON.stringify(model.configJson);
  return readFile(join(model.dir, CONFIG_FILE), 'utf8');
}

/** Bytes a tensor takes as stored (quantized tensors at their quantized size). */
export function storedTensorBytes(model: ModelCheckpoint, name: string): number {
  const entry = model.entry(name);
  const bytes = tensorBytes(entry.dtype as TensorDtype, entry.shape);
  return bytes ?? entry.byteLength;
}

/**
 * The tokenizer of the model at `path`: a GGUF file's vocabulary converted to tokenizer.json,
 * or the directory's (loadTokenizer). Reads only the header of a GGUF file.
 */
export async function loadModelTokenizer(path: string, ids: SpecialTokenIds): Promise<Tokenizer> {
  if (!isGgufPath(path)) return loadTokenizer(path, ids);
  const header = await readGgufHeader(path);
  const meta = new GgufMetadata(path, header.metadata);
  if (!meta.has('tokenizer.ggml.tokens')) throw new CheckpointError(path, 'has no vocabulary (tokenizer.ggml.tokens)');
  return tokenizerFromHfJson(tokenizerJsonFromGguf(meta), path, ids);
}
