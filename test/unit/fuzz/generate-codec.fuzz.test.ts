/**
 * Fuzzing the client API's codec: any GenerateRequest a client can send (every field at any
 * value its type allows, and garbage where the decoder is lenient) becomes a valid domain request
 * or an InvalidArgumentError; a request that passes round-trips through requestToWire.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as fc from 'fast-check';
import { requestFromWire, requestToWire } from '../../../common/wire/generate-codec';
import type { GenerateRequest } from '../../../common/wire/messages';
import { fuzzParameters, typedOrOk } from '../../support/fuzz';

const number = fc.oneof(fc.integer({ min: -2, max: 2 ** 32 + 2 }), fc.double(), fc.constantFrom(0, 1, 2 ** 32 - 1, 2 ** 53, -0, NaN, Infinity));
const sampling = fc.option(
  fc.record(
    { greedy: fc.boolean(), temperature: number, topK: number, topP: fc.option(number, { nil: undefined }), seed: number },
    { requiredKeys: ['greedy', 'temperature', 'topK', 'seed'] },
  ),
  { nil: null },
);
const prompt = fc.oneof(
  fc.record({ prompt: fc.constant('text' as const), text: fc.option(fc.string({ maxLength: 20 }), { nil: undefined }) }),
  fc.record({ prompt: fc.constant('tokenIds' as const), tokenIds: fc.option(fc.record({ ids: fc.array(number, { maxLength: 5 }) }), { nil: null }) }),
  fc.record({ prompt: fc.constant('promptHandle' as const), promptHandle: fc.string({ maxLength: 8 }) }),
  fc.record({ prompt: fc.constantFrom(undefined, 'other') }),
);
const request = fc
  .tuple(prompt, fc.record({ model: fc.string({ maxLength: 4 }), maxTokens: fc.option(number, { nil: undefined }), sampling, stop: fc.array(fc.string({ maxLength: 3 }), { maxLength: 3 }), ignoreEos: fc.boolean(), returnFirstLogits: fc.boolean() }))
  .map(([p, rest]) => ({ ...rest, ...p }) as unknown as GenerateRequest);

describe('fuzz: generate codec', () => {
  test('any wire request is a valid domain request or an InvalidArgumentError', () => {
    const handles = (h: string): number[] | undefined => (h === 'known' ? [1, 2] : undefined);
    fc.assert(
      fc.property(request, (w) => {
        const r = typedOrOk(() => requestFromWire(w, handles));
        if (r === undefined) return;
        assert.ok(Number.isSafeInteger(r.maxTokens) && r.maxTokens >= 1 && r.maxTokens <= 2 ** 32 - 1, `max tokens ${r.maxTokens}`);
        if (r.sampling.kind === 'random') {
          assert.ok(r.sampling.temperature > 0 && Number.isFinite(r.sampling.temperature));
          assert.ok(r.sampling.topP > 0 && r.sampling.topP <= 1);
          assert.ok(Number.isSafeInteger(r.sampling.topK) && r.sampling.topK >= 0);
        }
        // What the server accepted, a client can send again (ids are checked later, against the vocabulary).
        if (r.prompt.kind === 'text' || r.prompt.ids.every((id) => Number.isInteger(id) && id >= 0 && id <= 2 ** 32 - 1)) {
          const back = typedOrOk(() => requestFromWire(requestToWire(r), handles));
          assert.deepEqual(back, r);
        }
      }),
      fuzzParameters<[GenerateRequest]>(1000, [
        // Found by the fuzzer (seed -220194435): top_k 2^32 was accepted here though no client can send it.
        [{ model: '', sampling: { greedy: false, temperature: 1, topK: 2 ** 32, seed: 0 }, stop: [], ignoreEos: false, returnFirstLogits: false, prompt: 'tokenIds', tokenIds: null } as unknown as GenerateRequest],
      ]),
    );
  });
});
