/**
 * The tokenizer of a model directory: its tokenizer.json when present (hf-bpe.ts), otherwise the
 * built-in Mistral v0.1 vocabulary (mistral-v1.ts).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HfBpeTokenizer } from './hf-bpe';
import { parseHfTokenizerJson } from './hf-tokenizer-file';
import { loadMistralV1Tokenizer } from './mistral-v1';
import { TOKENIZER_FILE_NAME, type SpecialTokenIds, type Tokenizer } from './tokenizer';

export async function loadTokenizer(modelDir: string, ids: SpecialTokenIds): Promise<Tokenizer> {
  const file = join(modelDir, TOKENIZER_FILE_NAME);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return loadMistralV1Tokenizer(modelDir, ids);
    throw err;
  }
  return tokenizerFromHfJson(text, file, ids);
}

/**
 * A tokenizer from the text of a Hugging Face tokenizer.json; `file` names where it came from in
 * errors (a path, or a GGUF file whose metadata was converted to this format).
 */
export function tokenizerFromHfJson(text: string, file: string, ids: SpecialTokenIds): Tokenizer {
  return new HfBpeTokenizer(parseHfTokenizerJson(text, file), ids, file);
}
