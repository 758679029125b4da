/**
 * What the HTTP API needs from the coordinator: the same generation path, tokenizer, limits and
 * client gate that the gRPC client API uses (coordinator-node.ts wires both from one set).
 */
import type { ModelConfig } from '../../common/model/config';
import type { Tokenizer } from '../../common/tokenizer/tokenizer';
import type { ClientGate } from '../client-gate';
import type { RunRequestDeps } from '../run-request';
import type { ChatPromptFormatter } from './chat-prompt';

/** Which endpoint answered; a label of bora_http_responses_total. */
export type HttpEndpoint = 'chat_completions' | 'completions' | 'models' | 'other';

export interface HttpApiDeps extends RunRequestDeps {
  /** For logprobs' token text. */
  readonly tokenizer: Pick<Tokenizer, 'decode'>;
  /** Tokenizes off the event loop (the coordinator's tokenizer pool). */
  readonly encode: (text: string, options: { addBos: boolean }) => Promise<number[]>;
  /** Chat messages to prompt ids (chat-prompt.ts; a model's chat template when it has one). */
  readonly chatPrompt: ChatPromptFormatter;
  readonly config: Pick<ModelConfig, 'maxPositionEmbeddings' | 'vocabSize'>;
  /** UTF-8 bytes of prompt text a request may carry (--max-prompt-bytes); sizes the body limit. */
  readonly maxPromptBytes: number;
  /** The served model id; a request naming another is a 404. */
  readonly modelId: string;
  readonly gate: ClientGate;
  /** Whether a plan is serving now: without one, requests are refused with 503 at once. */
  readonly hasPipeline: () => boolean;
  /** Bytes of events a streaming client may leave unread before it is cut off. */
  readonly maxUnsentEventBytes?: number;
  /** Every response's endpoint and status (metrics). */
  readonly onResponse?: (endpoint: HttpEndpoint, status: number) => void;
  readonly log?: (message: string) => void;
}
