/**
 * An HttpApi (coordinator/http/) over a scripted generator, for tests of the HTTP layer alone:
 * no cluster, no model. The generator emits one token per tick (token id 100 + i, text `t{i} `),
 * finishes with `length` at max_tokens, reports the logprobs a request asks for, and records
 * every request it started and every cancellation.
 */
import { BoraError } from '../../common/errors';
import type { GenerationHandle } from '../../common/generation/generator';
import type { GenerationEvent, GenerationRequest } from '../../common/generation/request';
import { ClientGate, type ClientGateOptions } from '../../coordinator/client-gate';
import { instChatFormatter } from '../../coordinator/http/chat-prompt';
import type { HttpApiDeps } from '../../coordinator/http/http-deps';
import { HttpApi } from '../../coordinator/http/http-api';

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

export async function startTestHttpApi(options: { gate?: ClientGateOptions; maxPromptBytes?: number; contextTokens?: number; maxUnsentEventBytes?: number } = {}): Promise<TestHttpApi> {
  const generator = scriptedGenerator();
  const responses: { endpoint: string; status: number }[] = [];
  // A byte tokenizer: one id per UTF-8 byte (3..258), BOS 1, EOS 2.
  const encode = async (text: string, o: { addBos: boolean }): Promise<number[]> => [...(o.addBos ? [1] : []), ...[...Buffer.from(text, 'utf8')].map((b) => b + 3)];
  const state = { serving: true };
  const deps: HttpApiDeps = {
    generator: () => generator,
    tokenizer: { decode: (ids) => ids.map((id) => `<${id}>`).join('') },
    encode,
    chatPrompt: instChatFormatter(encode, 2),
    config: { maxPositionEmbeddings: options.contextTokens ?? 256, vocabSize: 32000 },
    maxPromptBytes: options.maxPromptBytes ?? 1024,
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
