/**
 * The tokenizer and chat template of a model directory, from the model's own files:
 *  - tokenizer.json (hf-tokenizer.ts) when present; a directory with no tokenizer files at all
 *    gets the built-in Mistral v0.1 vocabulary (mistral-v1.ts); tokenizer.model without
 *    tokenizer.json is an error (Bora does not read SentencePiece model files);
 *  - BOS / EOS: tokenizer_config.json's bos_token / eos_token when it names them, else
 *    config.json's bos_token_id / eos_token_id (the `ids` argument);
 *  - the ids that end a generation: EOS, config.json's and generation_config.json's
 *    eos_token_id (a number or a list), and the chat template's end-of-turn token;
 *  - the chat template: chat_template.jinja, else tokenizer_config.json's chat_template (a string,
 *    or a list of named templates, of which "default"), else the built-in [INST] format.
 * A file that cannot be parsed is a CheckpointError naming it.
 */
import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CheckpointError } from '../errors';
import { fallbackChatTemplate, parseChatTemplate, type ChatTemplate, type TemplateTokens } from './chat-template';
import { HfJsonTokenizer } from './hf-tokenizer';
import { loadMistralV1Tokenizer } from './mistral-v1';
import {
  GENERATION_CONFIG_FILE_NAME,
  SENTENCEPIECE_FILE_NAME,
  TOKENIZER_CONFIG_FILE_NAME,
  TOKENIZER_FILE_NAME,
  type SpecialTokenIds,
  type Tokenizer,
} from './tokenizer';

export const CHAT_TEMPLATE_FILE_NAME = 'chat_template.jinja';
const CONFIG_FILE_NAME = 'config.json';

/** What tokenizer_config.json says that Bora uses. */
export interface TokenizerConfig {
  readonly bosToken?: string;
  readonly eosToken?: string;
  readonly chatTemplate?: string;
}

/** The tokenizer's and the template's view of a model directory. */
export interface ModelText {
  readonly tokenizer: Tokenizer;
  readonly chatTemplate: ChatTemplate;
}

/** A tokenizer that takes more stop ids after it is built (both backends are). */
type StopExtensible = Tokenizer & { addStopIds(ids: readonly number[]): void };

export async function loadTokenizer(modelDir: string, ids: SpecialTokenIds): Promise<Tokenizer> {
  return (await loadModelText(modelDir, ids)).tokenizer;
}

/** The tokenizer and chat template of `modelDir` (see the file comment). */
export async function loadModelText(modelDir: string, ids: SpecialTokenIds, options: { now?: () => Date } = {}): Promise<ModelText> {
  const tokenizerFile = join(modelDir, TOKENIZER_FILE_NAME);
  const configFile = join(modelDir, TOKENIZER_CONFIG_FILE_NAME);
  const [tokenizerText, configText, generationText, modelConfigText, templateText] = await Promise.all([
    readOptional(tokenizerFile),
    readOptional(configFile),
    readOptional(join(modelDir, GENERATION_CONFIG_FILE_NAME)),
    readOptional(join(modelDir, CONFIG_FILE_NAME)),
    readOptional(join(modelDir, CHAT_TEMPLATE_FILE_NAME)),
  ]);
  const config = configText === undefined ? {} : parseTokenizerConfig(configText, configFile);
  const extraStopIds = [
    ...(modelConfigText === undefined ? [] : eosIdsOf(modelConfigText, join(modelDir, CONFIG_FILE_NAME))),
    ...(generationText === undefined ? [] : eosIdsOf(generationText, join(modelDir, GENERATION_CONFIG_FILE_NAME))),
  ];
  let tokenizer: StopExtensible;
  if (tokenizerText !== undefined) {
    tokenizer = hfTokenizer(tokenizerText, tokenizerFile, ids, config, extraStopIds, configFile);
  } else {
    const sentencePiece = join(modelDir, SENTENCEPIECE_FILE_NAME);
    if (await exists(sentencePiece)) {
      throw new CheckpointError(sentencePiece, `Bora reads tokenizer.json, not SentencePiece model files: add the model's ${TOKENIZER_FILE_NAME}`);
    }
    tokenizer = loadMistralV1Tokenizer(modelDir, ids);
  }
  const chatTemplate = chatTemplateOf(modelDir, config, templateText, options);
  const endOfTurn = endOfTurnId(chatTemplate, tokenizer);
  if (endOfTurn !== undefined) tokenizer.addStopIds([endOfTurn]);
  return { tokenizer, chatTemplate };
}

/**
 * The chat template of a model directory alone (chat_template.jinja or tokenizer_config.json;
 * else the built-in [INST] format), for a caller that has its tokenizer already. Render a chat
 * with `render(messages, { addGenerationPrompt: true })` and tokenize the text with addBos: false.
 */
export async function loadChatTemplate(modelDir: string, options: { now?: () => Date } = {}): Promise<ChatTemplate> {
  const configFile = join(modelDir, TOKENIZER_CONFIG_FILE_NAME);
  const [configText, templateText] = await Promise.all([readOptional(configFile), readOptional(join(modelDir, CHAT_TEMPLATE_FILE_NAME))]);
  const config = configText === undefined ? {} : parseTokenizerConfig(configText, configFile);
  return chatTemplateOf(modelDir, config, templateText, options);
}

function chatTemplateOf(modelDir: string, config: TokenizerConfig, templateText: string | undefined, options: { now?: () => Date }): ChatTemplate {
  const tokens: TemplateTokens = { bosToken: config.bosToken ?? '<s>', eosToken: config.eosToken ?? '</s>' };
  if (templateText !== undefined) return parseChatTemplate(templateText, join(modelDir, CHAT_TEMPLATE_FILE_NAME), tokens, options);
  if (config.chatTemplate !== undefined) return parseChatTemplate(config.chatTemplate, join(modelDir, TOKENIZER_CONFIG_FILE_NAME), tokens, options);
  return fallbackChatTemplate(tokens);
}

/**
 * A tokenizer from the text of a Hugging Face tokenizer.json; `file` names where it came from in
 * errors (a path, or a GGUF file whose metadata was converted to this format). BOS / EOS are
 * `ids`; a JSON or format error is a CheckpointError naming `file`.
 */
export function tokenizerFromHfJson(text: string, file: string, ids: SpecialTokenIds): Tokenizer {
  return hfTokenizer(text, file, ids, {}, [], CONFIG_FILE_NAME);
}

function hfTokenizer(
  text: string,
  file: string,
  ids: SpecialTokenIds,
  config: TokenizerConfig,
  extraStopIds: readonly number[],
  configFile: string,
): HfJsonTokenizer {
  const json = parseJson(text, file);
  const fromConfig = config.bosToken !== undefined || config.eosToken !== undefined;
  return new HfJsonTokenizer(json, file, {
    bos: config.bosToken ?? ids.bosTokenId,
    eos: config.eosToken ?? ids.eosTokenId,
    extraStopIds,
    declaredIn: fromConfig ? configFile : CONFIG_FILE_NAME,
  });
}

/**
 * The template's end-of-turn token: the special token right after an assistant message's text in
 * a rendered conversation ("</s>" for Mistral's templates, "<|im_end|>" for ChatML ones).
 */
export function endOfTurnId(template: ChatTemplate, tokenizer: Tokenizer): number | undefined {
  const marker = 'Bora end-of-turn probe';
  let text: string;
  try {
    text = template.render(
      [
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: marker },
        { role: 'user', content: 'Hi' },
      ],
      { addGenerationPrompt: false },
    );
  } catch {
    return undefined; // a template that will not render this has no end of turn to find
  }
  const at = text.indexOf(marker);
  if (at < 0) return undefined;
  const after = tokenizer.encode(text.slice(at + marker.length), { addBos: false });
  return after.length > 0 && tokenizer.decode([after[0]]) === '' ? after[0] : undefined;
}

function parseTokenizerConfig(text: string, file: string): TokenizerConfig {
  const json = parseJson(text, file);
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new CheckpointError(file, 'must hold a JSON object');
  const o = json as Record<string, unknown>;
  return { bosToken: tokenString(o.bos_token, 'bos_token', file), eosToken: tokenString(o.eos_token, 'eos_token', file), chatTemplate: templateOf(o.chat_template, file) };
}

/** A special token as tokenizer_config.json writes it: a string, an AddedToken object, or null. */
function tokenString(value: unknown, name: string, file: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string') return (value as { content: string }).content;
  throw new CheckpointError(file, `${name} must be a string or an object with "content", got ${JSON.stringify(value)}`);
}

function templateOf(value: unknown, file: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    const named = value.find((t) => typeof t === 'object' && t !== null && (t as { name?: unknown }).name === 'default');
    if (named !== undefined && typeof (named as { template?: unknown }).template === 'string') return (named as { template: string }).template;
  }
  throw new CheckpointError(file, 'chat_template must be a string or a list of {name, template} with a "default" one');
}

/** eos_token_id of config.json / generation_config.json, as a list (absent: empty). */
function eosIdsOf(text: string, file: string): number[] {
  const json = parseJson(text, file) as { eos_token_id?: unknown } | null;
  const value = json?.eos_token_id;
  if (value === undefined || value === null) return [];
  const list = Array.isArray(value) ? value : [value];
  for (const id of list) {
    if (!Number.isSafeInteger(id) || (id as number) < 0) throw new CheckpointError(file, `eos_token_id must be a token id or a list of them, got ${JSON.stringify(value)}`);
  }
  return list as number[];
}

function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new CheckpointError(file, `is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}

/** The file's text; undefined when it does not exist. */
async function readOptional(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
