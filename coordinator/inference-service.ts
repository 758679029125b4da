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
import { fallbackChatTemplate, type ChatMessage, type ChatTemplate } from '../common/tokenizer/chat-template';
import type { Tokenizer } from '../common/tokenizer/tokenizer';
import { eventToWire, requestFromWire } from '../common/wire/generate-codec';
import { BoundedWriter } from '../common/wire/bounded-writer';
import { failCall, toServiceError } from '../common/wire/grpc-status';
import { retryKindOf, type RetryKind } from '../common/wire/retry-metadata';
import type { ChatTurn, ClusterStatus, GenerateEvent, PromptPiece } from '../common/wire/messages';
import { boraProto, type InferenceHandlers } from '../common/wire/proto';
import type { ApiKeyPrincipal } from '../common/security/api-keys';
import type { AdmissionTicket } from './admission';
import { ClientGate } from './client-gate';
import { finishedOutcome, outcomeOf, type RequestOutcome } from './coordinator-metrics';
import { embedHandler } from './embed-service';
import type { Embedder } from './embeddings';
import { modelAdminHandlers } from './model-admin';
import { modelVersionMetadata, routeModel } from './model-routing';
import { PromptStore } from './prompt-store';
import type { ModelRef } from '../common/models/model-ref';
import type { ModelRegistry } from '../common/models/model-registry';
import { runAdmitted } from './run-request';
import type { TextFilter } from '../common/generation/text-filter';
import type { SafetyFilter } from './safety/safety-filter';
import { screenChatTurn, screenGenerate } from './safety/screen-request';
import type { Logger } from '../common/logging/logger';
import { REQUEST_ID_HEADER, requestIdOrNew } from '../common/logging/request-id';


export interface InferenceDeps {
  readonly generator: () => Pick<Generator, 'start'>;
  readonly tokenizer: Tokenizer;
  /**
   * Tokenizes text off the event loop (the CPU pool): a long prompt tokenized here would stall
   * every stream. Generate's text goes through the Generator's own encode option.
   */
  readonly encode: (text: string, options: { addBos: boolean }) => Promise<number[]>;
  /** Lays out a Chat conversation (the model's chat template); default: the built-in [INST] format. */
  readonly chatTemplate?: ChatTemplate;
  /** UTF-8 bytes of prompt text accepted per chat turn and per uploaded prompt, checked before tokenizing. */
  readonly maxPromptBytes: number;
  /** Tokens an uploaded prompt may hold (the model's context). */
  readonly maxPromptTokens: number;
  /** Cluster status for the Status RPC. */
  readonly status: () => Promise<ClusterStatus>;
  /** The model id the coordinator serves ('' accepts any request's empty model field). */
  readonly modelId: string;
  /** The registered version it serves (model-routing.ts), when it was given one. */
  readonly modelVersion?: ModelRef;
  /** The model registry for the admin RPCs (model-admin.ts); they answer FAILED_PRECONDITION without. */
  readonly models?: () => ModelRegistry | undefined;
  readonly onOutcome?: (outcome: RequestOutcome) => void;
  readonly onEvent?: (event: GenerationEvent) => void;
  /** A Generate call re-sent by a client after a retryable error (retry-metadata.ts). */
  readonly onClientRetry?: (kind: RetryKind) => void;
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
  /** Checks prompts before they reach the workers and generated text as it streams; none by default. */
  readonly safety?: SafetyFilter;
  /** Embeddings (embed-service.ts); Embed answers UNAVAILABLE without. */
  readonly embedder?: () => Embedder | undefined;
  /** Request lines (the generator logs each sequence); none when absent. */
  readonly log?: Logger;
}

/** The call's request id: the client's `x-request-id` (checked) or a new one. */
function requestIdOf(call: { metadata: grpc.Metadata }): string {
  const sent = call.metadata.get(REQUEST_ID_HEADER)[0];
  return requestIdOrNew(sent === undefined ? undefined : String(sent));
}

/**
 * The response's initial metadata, sent once and at once, so that the client has the request id
 * even when the call then fails: the id, and the model version that serves it when known.
 */
function sendReplyMetadata(call: { sendMetadata(md: grpc.Metadata): void }, requestId: string, version?: ModelRef): void {
  const reply = version === undefined ? new grpc.Metadata() : modelVersionMetadata(version);
  reply.set(REQUEST_ID_HEADER, requestId);
  call.sendMetadata(reply);
}

/** The call's request id, sent back at once (sendReplyMetadata). */
function takeRequestId(call: { metadata: grpc.Metadata; sendMetadata(md: grpc.Metadata): void }): string {
  const requestId = requestIdOf(call);
  sendReplyMetadata(call, requestId);
  return requestId;
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


/**
 * Runs one admitted request, writing its events to `write` in wire form; settles when it ends,
 * and then releases its admission ticket (run-request.ts, shared with the HTTP API).
 */
function runRequest(
  deps: InferenceDeps,
  request: GenerationRequest,
  ticket: AdmissionTicket | undefined,
  write: (event: GenerateEvent, domain: GenerationEvent) => void,
  onCancel: (cancel: () => void) => void,
  outputFilter?: TextFilter,
): Promise<void> {
  return runAdmitted(deps, request, ticket, (event) => write(eventToWire(event), event), onCancel, outputFilter);
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
  const serveGenerate = (call: GenerateCall, request: GenerationRequest, ticket: AdmissionTicket | undefined, outputFilter?: TextFilter): void => {
    let cancelRequest: () => void = () => undefined;
    let answered = false;
    let outcome: RequestOutcome = 'ok';
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
      (event, domain) => {
        if (domain.type === 'finish') outcome = finishedOutcome(domain.reason);
        events.write(event);
      },
      (cancel) => {
        cancelRequest = cancel;
        call.on('cancelled', cancel);
      },
      outputFilter,
    ).then(
      () => {
        clearTimeout(giveUp);
        if (answered) return;
        answered = true;
        deps.onOutcome?.(outcome);
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
      let log: Logger | undefined;
      try {
        const requestId = requestIdOf(call);
        log = deps.log?.child({ requestId });
        let version: ModelRef | undefined;
        try {
          who = gate.principal(call, 'Generate');
          const retry = retryKindOf(call.metadata);
          if (retry !== undefined) deps.onClientRetry?.(retry);
          version = routeModel(call.request.model, { modelId: deps.modelId, version: deps.modelVersion });
        } finally {
          sendReplyMetadata(call, requestId, version);
        }
        request = { ...requestFromWire(call.request, (h) => prompts.get(h)), requestId };
      } catch (err) {
        const bora = finish(err);
        log?.info(`Generate refused: ${bora.message}`, { code: bora.code });
        failCall(call, bora);
        return;
      }
      log?.info('Generate received', { peer: call.getPeer(), key: who.name });
      const safety = deps.safety;
      gate.admit(who, call, 'Generate', cancellation(call)).then(
        (ticket) => {
          if (safety === undefined) return serveGenerate(call, request, ticket);
          // The safety filter: a blocked prompt ends the stream with content_filter before any worker sees it.
          screenGenerate(safety, request, `key ${who.name} from ${call.getPeer()}`, (ids) => deps.tokenizer.decode(ids)).then(
            (screened) => {
              if (screened.kind === 'run') return serveGenerate(call, screened.value, ticket, screened.output);
              ticket?.release();
              deps.onOutcome?.('blocked');
              call.write(eventToWire(screened.finish));
              call.end();
            },
            (err: unknown) => {
              ticket?.release();
              failCall(call, finish(err));
            },
          );
        },
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
      let requestId: string;
      try {
        // One id for the conversation: every turn's sequence carries it.
        requestId = takeRequestId(call);
        who = gate.principal(call, 'Chat');
      } catch (err) {
        failCall(call, finish(err));
        return;
      }
      const cancelled = cancellation(call);
      // The conversation as messages; each turn renders all of it with the chat template (a
      // template may move earlier text, as Mistral Nemo's puts the system message in the last
      // user turn) and tokenizes the render, which holds its own BOS.
      const template = deps.chatTemplate ?? fallbackChatTemplate({ bosToken: '<s>', eosToken: '</s>' });
      const messages: ChatMessage[] = [];
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
          const turnStart = messages.length;
          if (turn.system !== '') {
            if (messages.length > 0) throw new InvalidArgumentError('only the first chat turn may set a system message');
            checkPromptBytes(turn.system, deps.maxPromptBytes, 'the system message');
            messages.push({ role: 'system', content: turn.system });
          }
          checkPromptBytes(turn.user, deps.maxPromptBytes, 'the chat message');
          // The safety filter: a blocked turn ends with content_filter and leaves the conversation as it was.
          const screened = deps.safety === undefined ? undefined : await screenChatTurn(deps.safety, turn.user, `key ${who.name} from ${call.getPeer()}`);
          if (screened?.kind === 'blocked') {
            messages.splice(turnStart);
            deps.onOutcome?.('blocked');
            return void events.write(eventToWire(screened.finish));
          }
          let turnBlocked = false;
          messages.push({ role: 'user', content: screened?.value ?? turn.user });
          const ids = await deps.encode(template.render(messages, { addGenerationPrompt: true }), { addBos: false });
          const request: GenerationRequest = {
            ...requestFromWire(
              { model: '', tokenIds: { ids }, prompt: 'tokenIds', maxTokens: turn.maxTokens, sampling: turn.sampling, stop: [], ignoreEos: false, returnFirstLogits: false },
              () => undefined,
            ),
            requestId,
          };
          const reply: number[] = [];
          const ticket = await gate.admit(who, call, 'Chat', cancelled);
          await runRequest(
            deps,
            request,
            ticket,
            (event, domain) => {
              // The real id, also of a token the safety filter hid from the client.
              if (domain.type === 'token') reply.push(domain.tokenId);
              if (event.finish?.reason === 'FINISH_REASON_CONTENT_FILTER') turnBlocked = true;
              events.write(event);
            },
            (cancel) => (cancelCurrent = cancel),
            screened?.output,
          );
          deps.onOutcome?.(turnBlocked ? 'blocked' : 'ok');
          if (turnBlocked) return void messages.splice(turnStart);
          // The reply as the template will lay it out next turn (its end-of-turn token included).
          const stops = new Set(deps.tokenizer.stopIds);
          messages.push({ role: 'assistant', content: deps.tokenizer.decode(reply.filter((id) => !stops.has(id))) });
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

    Embed: embedHandler({ embedder: () => deps.embedder?.(), gate, modelId: deps.modelId, modelVersion: deps.modelVersion, checkServing: deps.checkServing, onOutcome: (outcome) => deps.onOutcome?.(outcome) }),

    Drain: (call, callback) => {
      let who: ApiKeyPrincipal;
      try {
        who = gate.drainer(call, call.request.workerId);
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

    ...modelAdminHandlers({ gate, registry: () => deps.models?.() }),

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
