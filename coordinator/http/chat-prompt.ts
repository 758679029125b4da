/**
 * Chat messages as prompt token ids. The HTTP API takes the formatter as a dependency:
 * templateChatFormatter with the model's chat template (a directory's tokenizer_config.json or
 * chat_template.jinja, a GGUF file's tokenizer.chat_template, else the built-in [INST] format),
 * the template gRPC Chat renders.
 */
import type { ChatTemplate } from '../../common/tokenizer/chat-template';
import { InvalidArgumentError } from '../../common/errors';
import { fieldError } from './openai-error';

export const CHAT_ROLES = ['system', 'user', 'assistant'] as const;
export type ChatRole = (typeof CHAT_ROLES)[number];

export interface ChatMessage {
  readonly role: ChatRole;
  readonly content: string;
}

/** Messages to prompt ids; throws InvalidArgumentError (naming the field) for a conversation it cannot format. */
export type ChatPromptFormatter = (messages: readonly ChatMessage[]) => Promise<number[]>;

/**
 * The model's chat template (common/tokenizer/chat-template.ts): the conversation rendered with
 * the generation prompt and tokenized without an added BOS (the template writes its own). The
 * template's own refusals (raise_exception) are InvalidArgumentErrors carrying its message.
 */
export function templateChatFormatter(template: ChatTemplate, encode: (text: string, options: { addBos: boolean }) => Promise<number[]>): ChatPromptFormatter {
  return async (messages) => {
    if (!messages.some((m) => m.role === 'user')) throw fieldError('messages', 'messages hold no user message');
    let text: string;
    try {
      text = template.render(messages, { addGenerationPrompt: true });
    } catch (err) {
      // The template's refusal (a role it does not know, an order it does not accept), word for word.
      if (err instanceof InvalidArgumentError) throw fieldError('messages', err.message);
      throw err;
    }
    return encode(text, { addBos: false });
  };
}
