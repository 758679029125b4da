/**
 * The client API's receive limit (clientRequestLimitBytes, sized from the coordinator's own
 * prompt limit): a larger request is refused with RESOURCE_EXHAUSTED before it is decoded, the
 * server keeps serving afterwards, and a request whose prompt is over the prompt limit but within
 * the overhead still gets through to the prompt check. Real grpc-js client and server with the
 * coordinator's options.
 */
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { clientRequestLimitBytes, REQUEST_OVERHEAD_BYTES } from '../../../common/generation/prompt-limits';
import { channelOptions, type InferenceClient } from '../../../common/wire/proto';
import { startInferenceServer, type InferenceServerHarness } from '../../support/inference-server';

/** The server's prompt limit: small, so that the largest message is refused by the prompt check. */
const MAX_PROMPT_BYTES = 1024;
const LIMIT_BYTES = clientRequestLimitBytes(MAX_PROMPT_BYTES);

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
    harness = await startInferenceServer({ maxPromptBytes: MAX_PROMPT_BYTES, serverOptions: channelOptions(10_000, 5_000, LIMIT_BYTES) });
    // The client may send more than the server takes (its own send limit is the default).
    client = harness.client();
  });
  after(() => harness.close());

  test('is the prompt limit plus 1 MiB of headroom, whatever the prompt limit', () => {
    assert.equal(REQUEST_OVERHEAD_BYTES, 1024 * 1024);
    assert.equal(LIMIT_BYTES, MAX_PROMPT_BYTES + REQUEST_OVERHEAD_BYTES);
    assert.equal(clientRequestLimitBytes(1024 * 1024), 2 * 1024 * 1024);
  });

  test('an oversize request is refused with RESOURCE_EXHAUSTED; the server keeps serving', async () => {
    const oversize = await generateError(client, 'x'.repeat(LIMIT_BYTES + 1));
    assert.equal(oversize.code, grpc.status.RESOURCE_EXHAUSTED, oversize.details);
    // A normal request afterwards, on the same connection.
    const status = await new Promise<{ planEpoch: number }>((resolve, reject) => client.status({}, (err, reply) => (err ? reject(err) : resolve(reply!))));
    assert.equal(status.planEpoch, 1);
  });

  test('a prompt over the prompt limit but within the headroom passes the channel and reaches the prompt check', async () => {
    const largest = await generateError(client, 'x'.repeat(MAX_PROMPT_BYTES + REQUEST_OVERHEAD_BYTES / 2));
    assert.equal(largest.code, grpc.status.INVALID_ARGUMENT, largest.details);
    assert.match(largest.details, new RegExp(`the limit is ${MAX_PROMPT_BYTES} bytes`));
  });
});
