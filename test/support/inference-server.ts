/**
 * An Inference service on 127.0.0.1 without a cluster behind it: the real handlers (prompt
 * limits, tokenizing in a CPU pool, stream bounds) over a Generator the test chooses, so client
 * API bounds are tested with a real grpc-js client and server.
 */
import * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Generator } from '../../common/generation/generator';
import type { Scheduler } from '../../common/generation/scheduler';
import { parseModelConfig, type ModelConfig } from '../../common/model/config';
import { loadTokenizer } from '../../common/tokenizer/load-tokenizer';
import type { Tokenizer } from '../../common/tokenizer/tokenizer';
import { bindServer, type BoundServer } from '../../common/wire/bind-server';
import { boraProto, channelOptions, type InferenceClient } from '../../common/wire/proto';
import { CpuPool } from '../../coordinator/cpu-pool';
import { addInferenceService, type InferenceDeps } from '../../coordinator/inference-service';
import { fixtureDir } from './checkpoints';

export const TINY_MISTRAL_DIR = fixtureDir('tiny-mistral');

export interface InferenceServerHarness {
  readonly address: string;
  readonly tokenizer: Tokenizer;
  readonly config: ModelConfig;
  readonly pool: CpuPool;
  client(options?: grpc.ChannelOptions): InferenceClient;
  close(): Promise<void>;
}

export interface HarnessOptions {
  /** The generator behind Generate and Chat; default: a real Generator over a scheduler that refuses (for requests that must not reach it). */
  readonly generator?: (h: { tokenizer: Tokenizer; config: ModelConfig; encode: (text: string) => Promise<number[]> }) => Generator;
  readonly maxPromptBytes: number;
  readonly serverOptions?: grpc.ServerOptions;
  readonly deps?: Partial<InferenceDeps>;
}

const refusingScheduler = {
  submit: () => {
    throw new Error('this test harness has no scheduler');
  },
} as unknown as Scheduler;

export async function startInferenceServer(options: HarnessOptions): Promise<InferenceServerHarness> {
  const config = parseModelConfig(readFileSync(join(TINY_MISTRAL_DIR, 'config.json'), 'utf8'), 'config.json');
  const tokenizer = await loadTokenizer(TINY_MISTRAL_DIR, config);
  const pool = await CpuPool.create();
  const encode = (text: string, o: { addBos: boolean } = { addBos: true }): Promise<number[]> => pool.encode(TINY_MISTRAL_DIR, text, config, o);
  const generator =
    options.generator?.({ tokenizer, config, encode }) ??
    new Generator(refusingScheduler, tokenizer, config, { encode, maxPromptBytes: options.maxPromptBytes });
  const server = new grpc.Server(options.serverOptions ?? channelOptions(10_000, 5_000));
  addInferenceService(server, {
    generator: () => generator,
    tokenizer,
    encode,
    maxPromptBytes: options.maxPromptBytes,
    maxPromptTokens: config.maxPositionEmbeddings,
    modelId: '',
    status: async () => ({ planEpoch: 1, model: 'tiny', workers: [], activeSequences: 0, waitingRequests: 0, serving: true, settled: true }),
    ...options.deps,
  });
  const bound: BoundServer = await bindServer(server, '127.0.0.1', 0);
  const clients: InferenceClient[] = [];
  return {
    address: bound.address,
    tokenizer,
    config,
    pool,
    client: (channel = {}) => {
      const c = new (boraProto().Inference)(bound.address, grpc.credentials.createInsecure(), { ...channelOptions(10_000, 5_000), ...channel });
      clients.push(c);
      return c;
    },
    close: async () => {
      for (const c of clients) c.close();
      await bound.close();
      await pool.close();
    },
  };
}
