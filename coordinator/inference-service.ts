/**
 * The client API (proto/bora/v1/inference.proto) on top of a Generator. Every call first passes
 * the ClientGate (API key, role, admission: client-gate.ts). Wire messages are turned into domain
 * requests at this boundary; every failure leaves as a gRPC status with a clear message; a client
 * that goes away cancels its request, which frees its caches on every stage.
 */
import * as grpc from '@grpc/grpc-js';
import { BoraError, InvalidArgumentError, UnavailableError, asBoraError } from '../common/errors';
import { parseWorkerId } from '../common/cluster/member';
import type { WorkerId } from '../common/ids';
import type { Generator } from '../common/generation/generator';
import type { GenerationEvent, GenerationRequest } from '../common/generation/request';
import { checkPromptBytes } from '../common/generation/prompt-limits';
import type { Tokenizer } from '../common/tokenizer/tokenizer';
import { eventToWire, requestFromWire } from '../common/wire/generate-codec';
import { BoundedWriter } from '../common/wire/bounded-writer';
import { failCall, toServiceError } from '../common/wire/grpc-status';
import type { ChatTurn, ClusterStatus, GenerateEvent, PromptPiece } from '../common/wire/messages';
import { boraProto, type InferenceHandlers } from '../common/wire/proto';
import type { ApiKeyPrincipal } from '../common/security/api-keys';
import type { AdmissionTicket } from './admission';
import { ClientGate } from './client-gate';
import type { RequestOutcome } from './coordinator-metrics';
import { embedHandler } from './embed-service';
import type { Embedder } from './embeddings';
import { PromptStore } from './prompt-store';
import { runAdmitted } from './run-request';


export interface InferenceDeps {
  readonly generator: () => Pick<Generator, 'start'>;
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
  /** Who may call, and how much; default: an open gate (no keys, no limits). */
  readonly gate?: ClientGate;
  /** Event bytes a Generate or Chat client may leave unread before it is cut off; default MAX_UNSENT_EVENT_BYTES. */
  readonly maxUnsentEventBytes?: number;
  /** A Generate or Chat stream whose client stopped reading was cut off (its request is cancelled). */
  readonly onStreamCutOff?: (stream: 'Generate' | 'Chat', err: Error) => void;
  /** Embeddings (embed-service.ts); Embed answers UNAVAILABLE without. */
  readonly embedder?: () => Embedder | undefined;
}

/**
 * Event bytes a Generate or Chat client may leave unread before its stream is cut off with
 * RESOURCE_EXHAUSTED and its request cancelled: a token event is tens of bytes and the one event
 * with first logits is (vocab x 4) bytes, 512 KiB for a 128K vocabulary, so this is thousands of
 * tokens' worth; a client that stopped reading would otherwise make the coordinator queue every
 * event of its request.
 */
export const MAX_UNSENT_EVENT_BYTES = 4 * 1024 * 1024;

/** An event's size in bytes, near enough. */
const eventBytes = (e: GenerateEvent): number => 32 + (e.token === undefined || e.token === null ? 0 : e.token.text.length * 3 + e.token.firstLogits.byteLength);

type GenerateCall = Parameters<InferenceHandlers['Generate']>[0];

/** A request waiting for workers gives up this long before its deadline, with UNAVAILABLE. */
const GIVE_UP_BEFORE_DEADLINE_MS = 100;

function outcomeOf(err: BoraError): RequestOutcome {
  switch (err.code) {
    case 'CANCELLED':
      return 'cancelled';
    case 'INVALID_ARGUMENT':
    case 'NOT_FOUND':
      return 'invalid';
    case 'UNAUTHENTICATED':
    case 'PERMISSION_DENIED':
    case 'RESOURCE_EXHAUSTED':
      return 'refused';
    case 'UNAVAILABLE':
      return 'unavailable';
    case 'DEADLINE_EXCEEDED':
      return 'deadline';
    default:
      return 'error';
  }
}

/**
 * Runs one admitted request, writing its events to `write` in wire form; settles when it ends,
 * and then releases its admission ticket (run-request.ts, shared with the HTTP API).
 */
function runRequest(
  deps: InferenceDeps,
  request: GenerationRequest,
  ticket: AdmissionTicket | undefined,
  write: (event: GenerateEvent) => void,
  onCancel: (cancel: () => void) => void,
): Promise<void> {
  return runAdmitted(deps, request, ticket, (event) => write(eventToWire(event)), onCancel);
}

/** Aborted when the client cancels the call (ends a wait for admission). */
function cancellation(call: { on(event: 'cancelled', listener: () => void): unknown }): AbortSignal {
  const controller = new AbortController();
  call.on('cancelled', () => controller.abort());
  return controller.signal;
}

export function inferenceHandlers(deps: InferenceDeps): InferenceHandlers {
  const prompts = new PromptStore();
  const gate = deps.gate ?? new ClientGate({ keys: undefined, admission: undefined, audit: undefined });
  const finish = (err: unknown): BoraError => {
    const bora = asBoraError(err);
    deps.onOutcome?.(outcomeOf(bora));
    return bora;
  };

  /** Streams an admitted Generate request; the call's deadline bounds a wait for workers. */
  const serveGenerate = (call: GenerateCall, request: GenerationRequest, ticket: AdmissionTicket | undefined): void => {
    let cancelRequest: () => void = () => undefined;
    let answered = false;
    const events = new BoundedWriter(call, deps.maxUnsentEventBytes ?? MAX_UNSENT_EVENT_BYTES, eventBytes, 'Generate', (err) => {
      answered = true;
      cancelRequest();
      deps.onOutcome?.('refused');
      deps.onStreamCutOff?.('Generate', err);
    });
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
      ticket,
      (event) => events.write(event),
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
  };

  return {
    Generate: (call) => {
      let request: GenerationRequest;
      let who: ApiKeyPrincipal;
      try {
        who = gate.principal(call, 'Generate');
        if (call.request.model !== '' && deps.modelId !== '' && call.request.model !== deps.modelId) {
          throw new BoraError('NOT_FOUND', `unknown model "${call.request.model}"; this cluster serves "${deps.modelId}"`);
        }
        request = requestFromWire(call.request, (h) => prompts.get(h));
      } catch (err) {
        failCall(call, finish(err));
        return;
      }
      gate.admit(who, call, 'Generate', cancellation(call)).then(
        (ticket) => serveGenerate(call, request, ticket),
        (err: unknown) => failCall(call, finish(err)),
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
      try {
        gate.principal(call, 'SubmitPrompt');
      } catch (err) {
        fail(finish(err));
      }
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
      let who: ApiKeyPrincipal;
      try {
        who = gate.principal(call, 'Chat');
      } catch (err) {
        failCall(call, finish(err));
        return;
      }
      const cancelled = cancellation(call);
      // The conversation as token ids: <s>[INST] u1 [/INST] a1</s>[INST] u2 [/INST] ...
      const context: number[] = [];
      let turns: Promise<void> = Promise.resolve();
      let cancelCurrent: () => void = () => undefined;
      call.on('cancelled', () => cancelCurrent());
      const events = new BoundedWriter(call, deps.maxUnsentEventBytes ?? MAX_UNSENT_EVENT_BYTES, eventBytes, 'Chat', (err) => {
        cancelCurrent();
        deps.onOutcome?.('refused');
        deps.onStreamCutOff?.('Chat', err);
      });
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
          const ticket = await gate.admit(who, call, 'Chat', cancelled);
          await runRequest(
            deps,
            request,
            ticket,
            (event) => {
              if (event.token) reply.push(event.token.tokenId);
              events.write(event);
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

    Embed: embedHandler({ embedder: () => deps.embedder?.(), gate, modelId: deps.modelId, checkServing: deps.checkServing, onOutcome: (outcome) => deps.onOutcome?.(outcome) }),

    Drain: (call, callback) => {
      let who: ApiKeyPrincipal;
      try {
        who = gate.principal(call, 'Drain');
      } catch (err) {
        callback(toServiceError(err));
        return;
      }
      const what = `Drain ${call.request.workerId}`;
      (async () => {
        deps.checkServing?.();
        if (deps.drain === undefined) throw new BoraError('FAILED_PRECONDITION', 'this coordinator cannot drain workers');
        return { planEpoch: await deps.drain(parseWorkerId(call.request.workerId)) };
      })().then(
        (reply) => {
          gate.audit(who, call, what, 'ok', `plan ${reply.planEpoch} serves without it`);
          callback(null, reply);
        },
        (err: unknown) => {
          gate.audit(who, call, what, 'failed', asBoraError(err).message);
          callback(toServiceError(err));
        },
      );
    },

    Status: (call, callback) => {
      let who: ApiKeyPrincipal;
      try {
        who = gate.principal(call, 'Status');
      } catch (err) {
        callback(toServiceError(err));
        return;
      }
      deps.status().then(
        // A client key sees the plan and load, not the workers' ids and addresses.
        (s) => callback(null, who.role === 'admin' ? s : { ...s, workers: [] }),
        (err: unknown) => callback(toServiceError(err)),
      );
    },
  };
}

export function addInferenceService(server: grpc.Server, deps: InferenceDeps): void {
  server.addService(boraProto().Inference.service, inferenceHandlers(deps));
}
