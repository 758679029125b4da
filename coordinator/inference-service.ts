/**
 * The client API (proto/bora/v1/inference.proto) on top of a Generator. Wire messages are turned
 * into domain requests at this boundary; every failure leaves as a gRPC status with a clear
 * message; a client that goes away cancels its request, which frees its caches on every stage.
 */
import * as grpc from '@grpc/grpc-js';
import { BoraError, InvalidArgumentError, UnavailableError, asBoraError } from '../common/errors';
import { parseWorkerId } from '../common/cluster/member';
import type { WorkerId } from '../common/ids';
import type { Generator, GenerationHandle } from '../common/generation/generator';
import type { GenerationEvent, GenerationRequest } from '../common/generation/request';
import { checkPromptBytes } from '../common/generation/prompt-limits';
import type { Tokenizer } from '../common/tokenizer/tokenizer';
import { eventToWire, requestFromWire } from '../common/wire/generate-codec';
import { failCall, toServiceError } from '../common/wire/grpc-status';
import type { ChatTurn, ClusterStatus, GenerateEvent, PromptPiece } from '../common/wire/messages';
import { boraProto, type InferenceHandlers } from '../common/wire/proto';
import { PromptStore } from './prompt-store';

export type RequestOutcome = 'ok' | 'cancelled' | 'invalid' | 'unavailable' | 'deadline' | 'error';

export interface InferenceDeps {
  readonly generator: () => Generator;
  readonly tokenizer: Tokenizer;
  /**
   * Tokenizes text off the event loop (the CPU pool): a long prompt tokenized here would stall
   * every stream. Generate's text goes through the Generator's own encode option.
   */
  readonly encode: (text: string, options: { addBos: boolean }) => Promise<number[]>;
  /** UTF-8 bytes of prompt text accepted per chat turn and per uploaded prompt, checked before tokenizing. */
  readonly maxPromptBytes: number;
  /** Tokens an uploaded prompt may hold (the model's context). */
  readonly maxPromptTokens: number;
  /** Cluster status for the Status RPC. */
  readonly status: () => Promise<ClusterStatus>;
  /** The model id the coordinator serves ('' accepts any request's empty model field). */
  readonly modelId: string;
  readonly onOutcome?: (outcome: RequestOutcome) => void;
  readonly onEvent?: (event: GenerationEvent) => void;
  /** Throws UNAVAILABLE when this coordinator may not serve (a standby). */
  readonly checkServing?: () => void;
  /** Whether a pipeline is ready to compute (false while no worker can serve). */
  readonly hasPipeline?: () => boolean;
  /** Moves a worker's assignments away; resolves with the first epoch without it. */
  readonly drain?: (workerId: WorkerId) => Promise<number>;
}

/** A request waiting for workers gives up this long before its deadline, with UNAVAILABLE. */
const GIVE_UP_BEFORE_DEADLINE_MS = 100;

function outcomeOf(err: BoraError): RequestOutcome {
  switch (err.code) {
    case 'CANCELLED':
      return 'cancelled';
    case 'INVALID_ARGUMENT':
    case 'NOT_FOUND':
      return 'invalid';
    case 'UNAVAILABLE':
      return 'unavailable';
    case 'DEADLINE_EXCEEDED':
      return 'deadline';
    default:
      return 'error';
  }
}

/** Runs one request, writing its events to `write`; settles when it ends. */
function runRequest(
  deps: InferenceDeps,
  request: GenerationRequest,
  write: (event: GenerateEvent) => void,
  onCancel: (cancel: () => void) => void,
): Promise<void> {
  let handle: GenerationHandle;
  try {
    deps.checkServing?.();
    handle = deps.generator().start(request, (event) => {
      deps.onEvent?.(event);
      write(eventToWire(event));
    });
  } catch (err) {
    return Promise.reject(asBoraError(err));
  }
  onCancel(() => handle.cancel());
  return handle.done;
}

export function inferenceHandlers(deps: InferenceDeps): InferenceHandlers {
  const prompts = new PromptStore();
  const finish = (err: unknown): BoraError => {
    const bora = asBoraError(err);
    deps.onOutcome?.(outcomeOf(bora));
    return bora;
  };

  return {
    Generate: (call) => {
      let request: GenerationRequest;
      try {
        if (call.request.model !== '' && deps.modelId !== '' && call.request.model !== deps.modelId) {
          throw new BoraError('NOT_FOUND', `unknown model "${call.request.model}"; this cluster serves "${deps.modelId}"`);
        }
        request = requestFromWire(call.request, (h) => prompts.get(h));
      } catch (err) {
        failCall(call, finish(err));
        return;
      }
      let cancelRequest: () => void = () => undefined;
      let answered = false;
      // With no worker able to serve, the request waits, bounded by its deadline, and then fails
      // with UNAVAILABLE (not DEADLINE_EXCEEDED): the cluster, not the request, is the problem.
      const deadline = call.getDeadline();
      const deadlineMs = deadline instanceof Date ? deadline.getTime() : Number(deadline);
      const giveUp = Number.isFinite(deadlineMs)
        ? setTimeout(() => {
            if (deps.hasPipeline?.() !== false || answered) return;
            answered = true;
            cancelRequest();
            failCall(call, finish(new UnavailableError('no worker can serve the model right now; retry later')));
          }, Math.max(0, deadlineMs - Date.now() - GIVE_UP_BEFORE_DEADLINE_MS))
        : undefined;
      runRequest(
        deps,
        request,
        (event) => call.write(event),
        (cancel) => {
          cancelRequest = cancel;
          call.on('cancelled', cancel);
        },
      ).then(
        () => {
          clearTimeout(giveUp);
          if (answered) return;
          answered = true;
          deps.onOutcome?.('ok');
          call.end();
        },
        (err: unknown) => {
          clearTimeout(giveUp);
          if (answered) return;
          answered = true;
          failCall(call, finish(err));
        },
      );
    },

    SubmitPrompt: (call, callback) => {
      // Pieces are tokenized in order, one at a time, with the stream paused meanwhile: an
      // uploader cannot queue up work faster than it is done.
      const ids: number[] = [];
      let textBytes = 0;
      let failed = false;
      let pending: Promise<void> = Promise.resolve();
      const fail = (err: unknown): void => {
        if (failed) return;
        failed = true;
        callback(toServiceError(err));
      };
      const addPiece = async (piece: PromptPiece): Promise<void> => {
        if (piece.piece === 'text') {
          const text = piece.text ?? '';
          // The limit covers the upload as a whole, not each piece.
          checkPromptBytes(text, deps.maxPromptBytes, 'the uploaded prompt text (all pieces together)', textBytes);
          textBytes += Buffer.byteLength(text, 'utf8');
          ids.push(...(await deps.encode(text, { addBos: ids.length === 0 })));
        } else if (piece.piece === 'tokenIds') ids.push(...(piece.tokenIds?.ids ?? []));
        else throw new InvalidArgumentError('a prompt piece must set text or token_ids');
        if (ids.length > deps.maxPromptTokens) {
          throw new InvalidArgumentError(`the uploaded prompt is over ${deps.maxPromptTokens} tokens, the context limit`);
        }
      };
      call.on('data', (piece: PromptPiece) => {
        if (failed) return;
        call.pause();
        pending = pending.then(() => addPiece(piece)).then(
          () => {
            call.resume();
          },
          (err: unknown) => fail(err),
        );
      });
      call.on('end', () => {
        pending.then(() => {
          if (failed) return;
          try {
            if (ids.length === 0) throw new InvalidArgumentError('the uploaded prompt is empty');
            callback(null, { handle: prompts.put(ids), promptTokens: ids.length });
          } catch (err) {
            fail(err);
          }
        }, fail);
      });
    },

    Chat: (call) => {
      // The conversation as token ids: <s>[INST] u1 [/INST] a1</s>[INST] u2 [/INST] ...
      const context: number[] = [];
      let turns: Promise<void> = Promise.resolve();
      let cancelCurrent: () => void = () => undefined;
      call.on('cancelled', () => cancelCurrent());
      call.on('data', (turn: ChatTurn) => {
        turns = turns.then(async () => {
          const prefix = context.length === 0;
          checkPromptBytes(turn.user, deps.maxPromptBytes, 'the chat message');
          context.push(...(await deps.encode(`[INST] ${turn.user} [/INST]`, { addBos: prefix })));
          const request: GenerationRequest = {
            ...requestFromWire(
              { model: '', tokenIds: { ids: context }, prompt: 'tokenIds', maxTokens: turn.maxTokens, sampling: turn.sampling, stop: [], ignoreEos: false, returnFirstLogits: false },
              () => undefined,
            ),
          };
          const reply: number[] = [];
          await runRequest(
            deps,
            request,
            (event) => {
              if (event.token) reply.push(event.token.tokenId);
              call.write(event);
            },
            (cancel) => (cancelCurrent = cancel),
          );
          deps.onOutcome?.('ok');
          context.push(...reply);
          if (reply[reply.length - 1] !== deps.tokenizer.eosId) context.push(deps.tokenizer.eosId);
        });
        turns.catch((err: unknown) => failCall(call, finish(err)));
      });
      call.on('end', () => {
        turns.then(
          () => call.end(),
          () => undefined,
        );
      });
    },

    Drain: (call, callback) => {
      (async () => {
        deps.checkServing?.();
        if (deps.drain === undefined) throw new BoraError('FAILED_PRECONDITION', 'this coordinator cannot drain workers');
        return { planEpoch: await deps.drain(parseWorkerId(call.request.workerId)) };
      })().then(
        (reply) => callback(null, reply),
        (err: unknown) => callback(toServiceError(err)),
      );
    },

    Status: (_call, callback) => {
      deps.status().then(
        (s) => callback(null, s),
        (err: unknown) => callback(toServiceError(err)),
      );
    },
  };
}

export function addInferenceService(server: grpc.Server, deps: InferenceDeps): void {
  server.addService(boraProto().Inference.service, inferenceHandlers(deps));
}
