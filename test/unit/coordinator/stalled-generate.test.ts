/**
 * A Generate client that stops reading is cut off with RESOURCE_EXHAUSTED once the events
 * waiting for it pass the limit, and its request is cancelled (which frees its caches on every
 * stage); a client that reads gets its whole generation meanwhile. Real grpc-js client and
 * server, over a generator that produces events as fast as the stream takes them.
 */
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BoraError } from '../../../common/errors';
import type { Generator, GenerationHandle } from '../../../common/generation/generator';
import type { GenerationEvent } from '../../../common/generation/request';
import type { GenerateEvent } from '../../../common/wire/messages';
import { startInferenceServer, type InferenceServerHarness } from '../../support/inference-server';

const KiB = 1024;
const LIMIT_BYTES = 256 * KiB;
/** Each token event carries this much text, so a few hundred fill the limit. */
const TEXT_BYTES = 4 * KiB;
const TOKENS = 400;
const HTTP2_DEFAULT_WINDOW_BYTES = 65_535;

/** Emits `maxTokens` token events of TEXT_BYTES, one per timer tick, then a finish; stops on cancel. */
class FloodingGenerator {
  /** Requests cancelled before they finished. */
  cancelled = 0;
  start(request: { maxTokens: number }, onEvent: (e: GenerationEvent) => void): GenerationHandle {
    let stop = false;
    let finished = false;
    const done = (async () => {
      for (let index = 0; index < request.maxTokens; index++) {
        if (stop) throw new BoraError('CANCELLED', 'cancelled');
        onEvent({ type: 'token', index, tokenId: 1, text: 'x'.repeat(TEXT_BYTES) });
        await new Promise((r) => setTimeout(r, 1));
      }
      finished = true;
      onEvent({ type: 'finish', reason: 'length', text: '', promptTokens: 3, generatedTokens: request.maxTokens, timeToFirstTokenMs: 0, totalMs: 0, resumes: 0 });
    })();
    return {
      done,
      cancel: () => {
        if (!stop && !finished) this.cancelled++;
        stop = true;
      },
    };
  }
}

describe('Generate: a client that does not read', () => {
  let harness: InferenceServerHarness;
  const generator = new FloodingGenerator();
  const cutOffs: string[] = [];
  before(async () => {
    harness = await startInferenceServer({
      maxPromptBytes: 1024,
      generator: () => generator as unknown as Generator,
      deps: { maxUnsentEventBytes: LIMIT_BYTES, onStreamCutOff: (stream) => cutOffs.push(stream) },
    });
  });
  after(() => harness.close());

  test('is cut off with RESOURCE_EXHAUSTED and its request cancelled; a reading client gets every token', async () => {
    const request = { tokenIds: { ids: [1, 2, 3] }, maxTokens: TOKENS };
    // A connection each, so the stalled stream does not use up the reader's connection window.
    // What a client that stops reading takes in before the server's writes stop is its own receive
    // window (a client's choice: Bora's channels ask FLOW_CONTROL_WINDOW_BYTES, 16 MiB); the
    // server holds at most the limit beyond it either way. This one asks HTTP/2's default 64 KiB,
    // so that a few hundred events reach the limit.
    const stalledClient = harness.client({ 'grpc.use_local_subchannel_pool': 1, 'grpc-node.flow_control_window': HTTP2_DEFAULT_WINDOW_BYTES });
    const readerClient = harness.client({ 'grpc.use_local_subchannel_pool': 1 });

    const stalled = stalledClient.generate(request);
    stalled.on('data', () => undefined);
    stalled.pause();
    const stalledError = new Promise<grpc.ServiceError>((resolve) => stalled.on('error', resolve));

    const reader = readerClient.generate(request);
    let tokens = 0;
    reader.on('data', (e: GenerateEvent) => {
      if (e.token) tokens++;
    });
    const readerDone = new Promise<void>((resolve, reject) => {
      reader.on('end', resolve);
      reader.on('error', reject);
    });

    const err = await Promise.race([stalledError, new Promise<undefined>((r) => setTimeout(() => r(undefined), 15_000))]);
    assert.equal(err?.code, grpc.status.RESOURCE_EXHAUSTED, 'the stalled client is cut off');
    await readerDone;
    assert.equal(tokens, TOKENS);
    assert.deepEqual(cutOffs, ['Generate']);
    assert.equal(generator.cancelled, 1, "the stalled client's request is cancelled");
  });
});
