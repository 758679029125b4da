/**
 * Fuzzing the HTTP API's body parsers (coordinator/http/request-fields.ts): any JSON value, and
 * valid bodies with any one field replaced by any JSON value, become a typed request whose fields
 * are in range, or an InvalidArgumentError naming a field; never a crash.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as fc from 'fast-check';
import { parseChatCompletionBody, parseCompletionBody } from '../../../coordinator/http/request-fields';
import { fuzzParameters, typedOrOk } from '../../support/fuzz';

const FIELDS = ['model', 'messages', 'prompt', 'max_tokens', 'max_completion_tokens', 'temperature', 'top_p', 'seed', 'stop', 'stream', 'stream_options', 'logprobs', 'top_logprobs', 'n', 'user'];
const chat = fc.tuple(fc.constantFrom(...FIELDS), fc.jsonValue()).map(([f, v]) => ({ messages: [{ role: 'user', content: 'hi' }], [f]: v }));
const completion = fc.tuple(fc.constantFrom(...FIELDS), fc.jsonValue()).map(([f, v]) => ({ prompt: 'hi', [f]: v }));

function checkCommon(r: { maxTokens: number | undefined; sampling: { kind: string; temperature?: number; topP?: number }; stop: readonly string[]; logprobs: number | undefined }): void {
  assert.ok(r.maxTokens === undefined || (Number.isSafeInteger(r.maxTokens) && r.maxTokens >= 1));
  if (r.sampling.kind === 'random') assert.ok(r.sampling.temperature! > 0 && r.sampling.temperature! <= 2 && r.sampling.topP! > 0 && r.sampling.topP! <= 1);
  assert.ok(r.stop.length <= 4 && r.stop.every((s) => typeof s === 'string' && s !== ''));
  assert.ok(r.logprobs === undefined || (Number.isSafeInteger(r.logprobs) && r.logprobs >= 0 && r.logprobs <= 20));
}

describe('fuzz: HTTP request bodies', () => {
  test('chat: a typed request or an InvalidArgumentError', () => {
    fc.assert(
      fc.property(fc.oneof(fc.jsonValue(), chat), (body) => {
        const r = typedOrOk(() => parseChatCompletionBody(body));
        if (r === undefined) return;
        checkCommon(r);
        assert.ok(r.messages.length > 0 && r.messages.every((m) => ['system', 'user', 'assistant'].includes(m.role) && typeof m.content === 'string'));
      }),
      fuzzParameters(500),
    );
  });

  test('completions: a typed request or an InvalidArgumentError', () => {
    fc.assert(
      fc.property(fc.oneof(fc.jsonValue(), completion), (body) => {
        const r = typedOrOk(() => parseCompletionBody(body));
        if (r === undefined) return;
        checkCommon(r);
        assert.ok(r.prompt.kind === 'text' ? r.prompt.text !== '' : r.prompt.ids.length > 0 && r.prompt.ids.every((id) => Number.isSafeInteger(id) && id >= 0));
      }),
      fuzzParameters(500),
    );
  });
});
