/**
 * An HttpApi (coordinator/http/) over a scripted generator, for tests of the HTTP layer alone:
 * no cluster, no model. The generator emits one token per tick (token id 100 + i, text `t{i} `),
 * finishes with `length` at max_tokens, reports the logprobs a request asks for, and records
 * every request it started and every cancellation. Embeddings come from a scripted scheduler
 * (scriptedEmbedder).
 */
import { BoraError } from '../../common/errors';
import type { GenerationHandle } from '../../common/generation/generator';
import type { GenerationEvent, GenerationRequest } from '../../common/generation/request';
import { ClientGate, type ClientGateOptions } from '../../coordinator/client-gate';
import type { ChatPromptFormatter } from '../../coordinator/http/chat-prompt';
import { fieldError } from '../../coordinator/http/openai-error';
import type { HttpApiDeps } from '../../coordinator/http/http-deps';
import { HttpApi } from '../../coordinator/http/http-api';
import { Embedder } from '../../coordinator/embeddings';
import type { EmbeddingRequest } from '../../common/generation/scheduler';
import type { ModelConfig } from '../../common/model/config';

/**
 * A minimal chat formatter for these tests (the coordinator renders the model's chat template,
 * templateChatFormatter): Mistral's v1 instruction format, system messages prepended to the
 * first user turn, each piece tokenized on its own, an assistant turn followed by EOS:
 *
 *     <s>[INST] {system}\n\n{user 1} [/INST] {assistant 1}</s>[INST] {user 2} [/INST]
 */
function instChatFormatter(encode: (text: string, options: { addBos: boolean }) => Promise<number[]>, eosId: number): ChatPromptFormatter {
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

export interface ScriptedGenerator {
  readonly started: GenerationRequest[];
  cancelled: number;
  /** Milliseconds between tokens. */
  tokenIntervalMs: number;
  start(request: GenerationRequest, onEvent: (event: GenerationEvent) => void): GenerationHandle;
}

export function scriptedGenerator(tokenIntervalMs = 1): ScriptedGenerator {
  const g: ScriptedGenerator = {
    started: [],
    cancelled: 0,
    tokenIntervalMs,
    start(request, onEvent) {
      g.started.push(request);
      let timer: NodeJS.Timeout | undefined;
      let fail: (err: Error) => void = () => undefined;
      const promptTokens = request.prompt.kind === 'ids' ? request.prompt.ids.length : 0;
      const done = new Promise<void>((resolve, reject) => {
        fail = reject;
        let i = 0;
        const step = (): void => {
          const logprobs = request.logprobs === undefined ? undefined : { logprob: -0.5, top: Array.from({ length: request.logprobs }, (_, k) => ({ tokenId: 100 + i + k, logprob: -0.5 - k })) };
          onEvent({ type: 'token', index: i, tokenId: 100 + i, text: `t${i} `, ...(logprobs === undefined ? {} : { logprobs }) });
          i++;
          if (i >= request.maxTokens) {
            onEvent({ type: 'finish', reason: 'length', text: '', promptTokens, generatedTokens: i, timeToFirstTokenMs: 1, totalMs: 1, resumes: 0 });
            resolve();
            return;
          }
          timer = setTimeout(step, g.tokenIntervalMs);
        };
        timer = setTimeout(step, g.tokenIntervalMs);
      });
      return {
        done,
        cancel: () => {
          clearTimeout(timer);
          g.cancelled++;
          fail(new BoraError('CANCELLED', 'the request was cancelled'));
        },
      };
    },
  };
  return g;
}

export interface TestHttpApi {
  readonly api: HttpApi;
  readonly url: string;
  readonly generator: ScriptedGenerator;
  readonly responses: { endpoint: string; status: number }[];
  serving: boolean;
  close(): Promise<void>;
}

/**
 * An Embedder over a scripted scheduler: input i's vector is [tokens, 1/3, -1.25, i-th call]
 * (not normalised; the HTTP layer only carries it), delivered on the next tick.
 */
function scriptedEmbedder(config: { maxPositionEmbeddings: number; vocabSize: number }, encode: (text: string, o: { addBos: boolean }) => Promise<number[]>, maxPromptBytes: number): Embedder {
  let calls = 0;
  const scheduler = {
    submitEmbedding(request: EmbeddingRequest) {
      const vector = Float32Array.from([request.promptIds.length, 1 / 3, -1.25, calls++]);
      const timer = setImmediate(() => request.onEmbedding(vector));
      return { cancel: () => clearImmediate(timer) };
    },
  };
  return new Embedder({ scheduler, config: config as ModelConfig, encode, maxPromptBytes });
}

export interface TestHttpApiOptions {
  readonly gate?: ClientGateOptions;
  readonly maxPromptBytes?: number;
  readonly contextTokens?: number;
  readonly maxUnsentEventBytes?: number;
  /** Default: the minimal [INST] formatter above. */
  readonly chatPrompt?: (encode: (text: string, o: { addBos: boolean }) => Promise<number[]>) => ChatPromptFormatter;
}

export async function startTestHttpApi(options: TestHttpApiOptions = {}): Promise<TestHttpApi> {
  const generator = scriptedGenerator();
  const responses: { endpoint: string; status: number }[] = [];
  // A byte tokenizer: one id per UTF-8 byte (3..258), BOS 1, EOS 2.
  const encode = async (text: string, o: { addBos: boolean }): Promise<number[]> => [...(o.addBos ? [1] : []), ...[...Buffer.from(text, 'utf8')].map((b) => b + 3)];
  const state = { serving: true };
  const config = { maxPositionEmbeddings: options.contextTokens ?? 256, vocabSize: 32000 };
  const maxPromptBytes = options.maxPromptBytes ?? 1024;
  const embedder = scriptedEmbedder(config, encode, maxPromptBytes);
  const deps: HttpApiDeps = {
    generator: () => generator,
    tokenizer: { decode: (ids) => ids.map((id) => `<${id}>`).join('') },
    encode,
    chatPrompt: options.chatPrompt?.(encode) ?? instChatFormatter(encode, 2),
    config,
    maxPromptBytes,
    embedder: () => embedder,
    modelId: 'test-model',
    gate: new ClientGate(options.gate ?? { keys: undefined, admission: undefined, audit: undefined }),
    hasPipeline: () => state.serving,
    maxUnsentEventBytes: options.maxUnsentEventBytes,
    onResponse: (endpoint, status) => responses.push({ endpoint, status }),
  };
  const api = await HttpApi.start(deps, { host: '127.0.0.1', port: 0 });
  const result: TestHttpApi = {
    api,
    url: `http://${api.address}`,
    generator,
    responses,
    get serving() {
      return state.serving;
    },
    set serving(v: boolean) {
      state.serving = v;
    },
    close: () => api.close(),
  };
  return result;
}
