/**
 * The two streaming client calls besides Generate: a bidi Chat session (one turn at a time, each
 * reply streamed back as events) and a client-streaming SubmitPrompt upload. Both take an
 * optional CoordinatorAccess (client-credentials.ts) as generate does; errors arrive as
 * BoraErrors (INVALID_ARGUMENT with the template's message when the chat template refuses a turn).
 */
import type * as grpc from '@grpc/grpc-js';
import { InternalError } from '../common/errors';
import type { GenerationEvent } from '../common/generation/request';
import type { SamplingParams } from '../common/sampling/sampler';
import { eventFromWire, requestToWire } from '../common/wire/generate-codec';
import { fromServiceError } from '../common/wire/grpc-status';
import type { GenerateEvent, PromptPiece } from '../common/wire/messages';
import type { CoordinatorAccess } from './client-credentials';
import { connect, inferenceClient } from './inference-client';

export interface ChatTurnOptions {
  readonly maxTokens: number;
  readonly sampling: SamplingParams;
  /** Only on the first turn. */
  readonly system?: string;
}

type FinishEvent = GenerationEvent & { type: 'finish' };

/** One Chat call; turn() sends a user message and resolves with the reply's finish event. */
export class ChatSession {
  private pending: { onEvent: (e: GenerationEvent) => void; resolve: (f: FinishEvent) => void; reject: (err: Error) => void } | undefined;
  private failed: Error | undefined;

  private constructor(
    private readonly client: ReturnType<typeof inferenceClient>,
    private readonly call: grpc.ClientDuplexStream<unknown, GenerateEvent>,
  ) {
    call.on('data', (wire: GenerateEvent) => {
      const event = eventFromWire(wire);
      const turn = this.pending;
      if (turn === undefined) return this.fail(new InternalError('the coordinator sent chat events with no turn pending'));
      turn.onEvent(event);
      if (event.type === 'finish') {
        this.pending = undefined;
        turn.resolve(event);
      }
    });
    call.on('error', (err: grpc.ServiceError) => this.fail(fromServiceError(err)));
    call.on('end', () => this.fail(new InternalError('the coordinator ended the chat')));
  }

  static async open(address: string, deadlineMs: number, access?: CoordinatorAccess): Promise<ChatSession> {
    const client = inferenceClient(address, access);
    try {
      await connect(client, address);
    } catch (err) {
      client.close();
      throw err;
    }
    const call = client.chat({ deadline: Date.now() + deadlineMs }) as unknown as grpc.ClientDuplexStream<unknown, GenerateEvent>;
    return new ChatSession(client, call);
  }

  turn(user: string, options: ChatTurnOptions, onEvent: (e: GenerationEvent) => void): Promise<FinishEvent> {
    if (this.failed !== undefined) return Promise.reject(this.failed);
    if (this.pending !== undefined) return Promise.reject(new InternalError('a chat turn is already in progress'));
    const wire = requestToWire({ prompt: { kind: 'ids', ids: [] }, maxTokens: options.maxTokens, sampling: options.sampling, stop: [], ignoreEos: false, returnFirstLogits: false });
    return new Promise<FinishEvent>((resolve, reject) => {
      this.pending = { onEvent, resolve, reject };
      this.call.write({ user, maxTokens: wire.maxTokens, sampling: wire.sampling, system: options.system ?? '' });
    });
  }

  /** Ends the conversation (half-closes the call) and the channel. */
  close(): void {
    this.failed ??= new InternalError('the chat is closed');
    this.call.end();
    this.client.close();
  }

  private fail(err: Error): void {
    this.failed ??= err;
    const turn = this.pending;
    this.pending = undefined;
    turn?.reject(err);
  }
}

/** Uploads a prompt in pieces with SubmitPrompt; resolves with its handle and token count. */
export async function submitPrompt(
  address: string,
  pieces: readonly PromptPiece[],
  deadlineMs: number,
  access?: CoordinatorAccess,
): Promise<{ handle: string; promptTokens: number }> {
  const client = inferenceClient(address, access);
  try {
    await connect(client, address);
    return await new Promise((resolve, reject) => {
      const call = client.submitPrompt({ deadline: Date.now() + deadlineMs }, (err, reply) =>
        err ? reject(fromServiceError(err)) : resolve({ handle: reply!.handle, promptTokens: reply!.promptTokens }),
      );
      for (const piece of pieces) call.write(piece);
      call.end();
    });
  } finally {
    client.close();
  }
}
