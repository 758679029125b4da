/**
 * Chat messages -> prompt text, by the model's own chat template: tokenizer_config.json's
 * `chat_template`, a Jinja template rendered with @huggingface/jinja the way transformers'
 * apply_chat_template renders it (trim_blocks and lstrip_blocks, `messages`, `bos_token`,
 * `eos_token`, `add_generation_prompt`, and the `raise_exception` and `strftime_now` globals).
 * A directory without a template gets FALLBACK_CHAT_TEMPLATE: the [INST] format Bora has always
 * used, with a system message put in front of the first user turn.
 *
 * The rendered text holds the template's own BOS ("<s>..."): tokenize it with addBos: false.
 * A template's raise_exception(...) is an InvalidArgumentError carrying the template's message
 * word for word (a 400 / INVALID_ARGUMENT to the client); a template that cannot be parsed is a
 * CheckpointError naming its file, at load.
 *
 * Two places where Python's jinja2 and @huggingface/jinja part ways are bridged so hub templates
 * render byte for byte as their users get them from transformers:
 *  - a backslash before a newline inside a string literal is a line continuation in jinja2 (it
 *    decodes literals with Python's unicode-escape), a syntax error in @huggingface/jinja: the
 *    source is rewritten first (joinLineContinuations);
 *  - the globals are bound here, not by the library, so that strftime_now can take a clock.
 */
import type * as JinjaModule from '@huggingface/jinja' with { 'resolution-mode': 'import' };
import { CheckpointError, InvalidArgumentError } from '../errors';

// The package's types describe its ES module; its CommonJS build (loaded here) has the same API.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { Environment, Interpreter, Template } = require('@huggingface/jinja') as typeof JinjaModule;

export interface ChatMessage {
  /** 'system', 'user', 'assistant' (whatever else a template accepts is up to the template). */
  readonly role: string;
  readonly content: string;
}

export interface RenderOptions {
  /** End the text with what opens the assistant's reply (transformers' add_generation_prompt). */
  readonly addGenerationPrompt: boolean;
}

export interface ChatTemplate {
  /** Where the template came from: a file path, or 'built-in [INST] format'. */
  readonly source: string;
  /** The prompt text for `messages`; InvalidArgumentError when the template refuses them. */
  render(messages: readonly ChatMessage[], options: RenderOptions): string;
}

/** The token strings a template sees as bos_token / eos_token. */
export interface TemplateTokens {
  readonly bosToken: string;
  readonly eosToken: string;
}

/**
 * Today's [INST] format as a template: "<s>[INST] u1 [/INST] a1</s>[INST] u2 [/INST]", with a
 * system message in front of the first user message ("[INST] system\n\nu1 [/INST]"), as Mistral
 * 7B v0.1's own template lays out turns. Roles must alternate user / assistant after the system
 * message.
 */
export const FALLBACK_CHAT_TEMPLATE = [
  "{%- if messages and messages[0]['role'] == 'system' %}",
  "{%- set system_message = messages[0]['content'] %}",
  '{%- set loop_messages = messages[1:] %}',
  '{%- else %}',
  '{%- set loop_messages = messages %}',
  '{%- endif %}',
  '{{- bos_token }}',
  '{%- for message in loop_messages %}',
  "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}",
  "{{- raise_exception('After the optional system message, conversation roles must alternate user/assistant/user/assistant/...') }}",
  '{%- endif %}',
  "{%- if message['role'] == 'user' %}",
  '{%- if loop.first and system_message is defined %}',
  "{{- '[INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}",
  '{%- else %}',
  "{{- '[INST] ' + message['content'] + ' [/INST]' }}",
  '{%- endif %}',
  '{%- else %}',
  "{{- ' ' + message['content'] + eos_token }}",
  '{%- endif %}',
  '{%- endfor %}',
].join('\n');

export const FALLBACK_TEMPLATE_SOURCE = 'built-in [INST] format';

/** Thrown by the template's raise_exception(); becomes an InvalidArgumentError. */
class TemplateException extends Error {}

/**
 * jinja2 reads `"a\<newline>b"` as "ab"; @huggingface/jinja refuses it. Removes each
 * backslash-newline inside a string literal of a {{ }} or {% %} tag; text, comments and
 * everything else stay as they are.
 */
export function joinLineContinuations(source: string): string {
  let out = '';
  let i = 0;
  while (i < source.length) {
    const open = source.slice(i, i + 2);
    if (open === '{#') {
      const end = source.indexOf('#}', i + 2);
      const stop = end < 0 ? source.length : end + 2;
      out += source.slice(i, stop);
      i = stop;
      continue;
    }
    if (open !== '{{' && open !== '{%') {
      out += source[i++];
      continue;
    }
    const close = open === '{{' ? '}}' : '%}';
    out += open;
    i += 2;
    let quote: string | null = null;
    while (i < source.length) {
      const ch = source[i];
      if (quote === null) {
        if (source.startsWith(close, i)) break;
        if (ch === '"' || ch === "'") quote = ch;
        out += ch;
        i++;
      } else if (ch === '\\') {
        if (source[i + 1] === '\n') i += 2;
        else if (source[i + 1] === '\r' && source[i + 2] === '\n') i += 3;
        else {
          out += source.slice(i, i + 2);
          i += 2;
        }
      } else {
        if (ch === quote) quote = null;
        out += ch;
        i++;
      }
    }
  }
  return out;
}

/** Python's range(), which chat templates use for loops. */
function range(start: number, stop?: number, step = 1): number[] {
  const [from, to] = stop === undefined ? [0, start] : [start, stop];
  if (step === 0) throw new TemplateException('range() arg 3 must not be zero');
  const out: number[] = [];
  for (let v = from; step > 0 ? v < to : v > to; v += step) out.push(v);
  return out;
}

const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];
const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];

/** Python's strftime for the directives chat templates use, in local time. */
export function strftime(date: Date, format: string): string {
  const pad = (n: number, width = 2): string => String(n).padStart(width, '0');
  return format.replace(/%([a-zA-Z%])/g, (whole, d: string) => {
    switch (d) {
      case 'Y':
        return String(date.getFullYear());
      case 'y':
        return pad(date.getFullYear() % 100);
      case 'm':
        return pad(date.getMonth() + 1);
      case 'd':
        return pad(date.getDate());
      case 'e':
        return String(date.getDate()).padStart(2, ' ');
      case 'B':
        return MONTHS[date.getMonth()];
      case 'b':
        return MONTHS[date.getMonth()].slice(0, 3);
      case 'A':
        return DAYS[date.getDay()];
      case 'a':
        return DAYS[date.getDay()].slice(0, 3);
      case 'H':
        return pad(date.getHours());
      case 'M':
        return pad(date.getMinutes());
      case 'S':
        return pad(date.getSeconds());
      case 'j': {
        const start = new Date(date.getFullYear(), 0, 1);
        return pad(Math.floor((date.getTime() - start.getTime()) / 86_400_000) + 1, 3);
      }
      case '%':
        return '%';
      default:
        return whole;
    }
  });
}

export interface ParseOptions {
  /** Gives strftime_now its date; default: the wall clock. */
  readonly now?: () => Date;
}

/**
 * A template from its source; `source` names where it came from in errors (a file). A template
 * that does not parse is a CheckpointError naming it.
 */
export function parseChatTemplate(text: string, source: string, tokens: TemplateTokens, options: ParseOptions = {}): ChatTemplate {
  let parsed: JinjaModule.Template['parsed'];
  try {
    parsed = new Template(joinLineContinuations(text)).parsed;
  } catch (err) {
    throw new CheckpointError(source, `chat_template cannot be parsed: ${(err as Error).message}`, { cause: err });
  }
  const now = options.now ?? (() => new Date());
  return {
    source,
    render(messages, renderOptions) {
      checkMessages(messages);
      const env = new Environment();
      const globals: Record<string, unknown> = {
        false: false,
        true: true,
        none: null,
        False: false,
        True: true,
        None: null,
        range,
        raise_exception: (message: unknown) => {
          throw new TemplateException(String(message));
        },
        strftime_now: (format: unknown) => strftime(now(), String(format)),
        messages: messages.map((m) => ({ role: m.role, content: m.content })),
        bos_token: tokens.bosToken,
        eos_token: tokens.eosToken,
        add_generation_prompt: renderOptions.addGenerationPrompt,
      };
      for (const [name, value] of Object.entries(globals)) env.set(name, value);
      try {
        const result = new Interpreter(env).run(parsed);
        return String(result.value);
      } catch (err) {
        if (err instanceof TemplateException) throw new InvalidArgumentError(err.message);
        throw new InvalidArgumentError(`the chat template (${source}) failed on these messages: ${(err as Error).message}`, { cause: err });
      }
    },
  };
}

function checkMessages(messages: readonly ChatMessage[]): void {
  if (!Array.isArray(messages) || messages.length === 0) throw new InvalidArgumentError('a chat needs at least one message');
  messages.forEach((m, i) => {
    if (typeof m !== 'object' || m === null || typeof m.role !== 'string' || m.role === '') {
      throw new InvalidArgumentError(`message ${i} needs a role (a non-empty string)`);
    }
    if (typeof m.content !== 'string') throw new InvalidArgumentError(`message ${i} needs content (a string)`);
  });
}

/** The built-in [INST] template (for directories whose tokenizer_config.json has no chat_template). */
export function fallbackChatTemplate(tokens: TemplateTokens): ChatTemplate {
  return parseChatTemplate(FALLBACK_CHAT_TEMPLATE, FALLBACK_TEMPLATE_SOURCE, tokens);
}
