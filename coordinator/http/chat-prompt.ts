/**
 * Chat messages as prompt token ids. The HTTP API takes the formatter as a dependency: the
 * model's own chat template (templateChatFormatter, as gRPC Chat renders it) where the model has
 * one, or the minimal formatter here (instChatFormatter) for a GGUF file, whose template is not
 * read yet.
 *
 * The minimal formatter is the format gRPC `Chat` uses (inference-service.ts), Mistral's v1
 * instruction format, with system messages prepended to the first user turn:
 *
 *     <s>[INST] {system}\n\n{user 1} [/INST] {assistant 1}</s>[INST] {user 2} [/INST]
 *
 * Each piece is tokenized on its own, as `Chat` does turn by turn: an assistant turn is its text
 * tokenized without BOS, then EOS.
 */
import type { ChatTemplate } from '../../common/tokenizer/chat-template';
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
    return encode(template.render(messages, { addGenerationPrompt: true }), { addBos: false });
  };
}

export function instChatFormatter(encode: (text: string, options: { addBos: boolean }) => Promise<number[]>, eosId: number): ChatPromptFormatter {
  return async (messages) => {
    const system: string[] = [];
    const ids: number[] = [];
    let users = 0;
    for (const [i, m] of messages.entries()) {
      if (m.role === 'system') {
        if (users > 0) throw fieldError(`messages.${i}.role`, 'a system message must come before the first user message');
        system.push(m.content);
      } else if (m.role === 'user') {
        const text = users === 0 && system.length > 0 ? `${system.join('\n\n')}\n\n${m.content}` : m.content;
        ids.push(...(await encode(`[INST] ${text} [/INST]`, { addBos: users === 0 })));
        users++;
      } else {
        if (users === 0) throw fieldError(`messages.${i}.role`, 'an assistant message must follow a user message');
        ids.push(...(await encode(m.content, { addBos: false })), eosId);
      }
    }
    if (users === 0) throw fieldError('messages', 'messages hold no user message');
    if (messages[messages.length - 1].role !== 'user') throw fieldError(`messages.${messages.length - 1}.role`, 'the last message must be a user message');
    return ids;
  };
}
