/**
 * The client API's receive limit (MAX_CLIENT_REQUEST_BYTES, sized from the largest prompt an
 * operator may allow): a larger request is refused with RESOURCE_EXHAUSTED before it is decoded,
 * the server keeps serving afterwards, and a request with the largest allowed prompt still gets
 * through to the prompt check. Real grpc-js client and server with the coordinator's options.
 */
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { MAX_CLIENT_REQUEST_BYTES, MAX_PROMPT_BYTES_CEILING } from '../../../common/generation/prompt-limits';
import { channelOptions, type InferenceClient } from '../../../common/wire/proto';
import { startInferenceServer, type InferenceServerHarness } from '../../support/inference-server';

/** The server's prompt limit: small, so that the largest message is refused by the prompt check. */
const MAX_PROMPT_BYTES = 1024;

function generateError(client: InferenceClient, prompt: string): Promise<grpc.ServiceError> {
  return new Promise((resolve, reject) => {
    const call = client.generate({ text: prompt, maxTokens: 1 });
    call.on('data', () => undefined);
    call.on('error', resolve);
    call.on('end', () => reject(new Error('the request was not refused')));
  });
}

describe('client API: the message size limit', () => {
  let harness: InferenceServerHarness;
  let client: InferenceClient;
  before(async () => {
    harness = await startInferenceServer({ maxPromptBytes: MAX_PROMPT_BYTES, serverOptions: channelOptions(10_000, 5_000, MAX_CLIENT_REQUEST_BYTES) });
    // The client may send more than the server takes (its own send limit is the default).
    client = harness.client();
  });
  after(() => harness.close());

  test('is the largest prompt plus headroom, far below the 64 MiB of other channels', () => {
    assert.ok(MAX_CLIENT_REQUEST_BYTES > MAX_PROMPT_BYTES_CEILING);
    assert.ok(MAX_CLIENT_REQUEST_BYTES <= MAX_PROMPT_BYTES_CEILING + 2 * 1024 * 1024);
  });

  test('an oversize request is refused with RESOURCE_EXHAUSTED; the server keeps serving', async () => {
    const oversize = await generateError(client, 'x'.repeat(MAX_CLIENT_REQUEST_BYTES + 1));
    assert.equal(oversize.code, grpc.status.RESOURCE_EXHAUSTED, oversize.details);
    // A normal request afterwards, on the same connection.
    const status = await new Promise<{ planEpoch: number }>((resolve, reject) => client.status({}, (err, reply) => (err ? reject(err) : resolve(reply!))));
    assert.equal(status.planEpoch, 1);
  });

  test('a request with the largest allowed prompt passes the channel and reaches the prompt check', async () => {
    const largest = await generateError(client, 'x'.repeat(MAX_PROMPT_BYTES_CEILING));
    assert.equal(largest.code, grpc.status.INVALID_ARGUMENT, largest.details);
    assert.match(largest.details, new RegExp(`the limit is ${MAX_PROMPT_BYTES} bytes`));
  });
});
