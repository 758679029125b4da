/**
 * The client API's codec: a GenerationRequest goes to the wire and back unchanged; a received
 * request gets its defaults (max tokens, greedy sampling, top-p 1) and is refused with
 * InvalidArgumentError when a field is bad; generation events go both ways with their logits
 * bit-exact and every finish reason mapped.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InvalidArgumentError } from '../../../common/errors';
import { DEFAULT_MAX_TOKENS, type GenerationEvent, type GenerationRequest } from '../../../common/generation/request';
import { UINT32_MAX } from '../../../common/wire/field-ranges';
import { eventFromWire, eventToWire, maxTokensFromWire, requestFromWire, requestToWire } from '../../../common/wire/generate-codec';
import { boraProto } from '../../../common/wire/proto';

type WireRequest = ReturnType<typeof requestToWire>;
type WireEvent = ReturnType<typeof eventToWire>;

const noHandles = (): undefined => undefined;

function isInvalid(message: RegExp) {
  return (err: unknown) => err instanceof InvalidArgumentError && message.test(err.message);
}

/** A wire request as a client would send it, with proto3 defaults for what it leaves out. */
function wireRequest(fields: Partial<WireRequest>): WireRequest {
  return { model: '', sampling: null, stop: [], ignoreEos: false, returnFirstLogits: false, ...fields };
}

describe('requestToWire', () => {
  test('a text prompt with greedy sampling', () => {
    const r: GenerationRequest = { prompt: { kind: 'text', text: 'Hi' }, maxTokens: 5, sampling: { kind: 'greedy' }, stop: ['\n'], ignoreEos: true, returnFirstLogits: false };
    assert.deepEqual(requestToWire(r, 'tiny'), {
      model: 'tiny',
      text: 'Hi',
      prompt: 'text',
      maxTokens: 5,
      sampling: { greedy: true, temperature: 0, topK: 0, topP: 1, seed: 0 },
      stop: ['\n'],
      ignoreEos: true,
      returnFirstLogits: false,
    });
  });

  test('token ids with random sampling; the model defaults to empty', () => {
    const r: GenerationRequest = {
      prompt: { kind: 'ids', ids: [1, 5, 9] },
      maxTokens: 3,
      sampling: { kind: 'random', temperature: 0.7, topK: 40, topP: 0.9, seed: 123n },
      stop: [],
      ignoreEos: false,
      returnFirstLogits: true,
    };
    assert.deepEqual(requestToWire(r), {
      model: '',
      tokenIds: { ids: [1, 5, 9] },
      prompt: 'tokenIds',
      maxTokens: 3,
      sampling: { greedy: false, temperature: 0.7, topK: 40, topP: 0.9, seed: 123 },
      stop: [],
      ignoreEos: false,
      returnFirstLogits: true,
    });
  });

  test('the wire request owns its arrays', () => {
    const ids = [1, 2];
    const stop = ['x'];
    const wire = requestToWire({ prompt: { kind: 'ids', ids }, maxTokens: 1, sampling: { kind: 'greedy' }, stop, ignoreEos: false, returnFirstLogits: false });
    ids.push(3);
    stop.push('y');
    assert.deepEqual(wire.tokenIds, { ids: [1, 2] });
    assert.deepEqual(wire.stop, ['x']);
  });
});

describe('requestFromWire', () => {
  const requests: GenerationRequest[] = [
    { prompt: { kind: 'text', text: 'Once upon' }, maxTokens: 16, sampling: { kind: 'greedy' }, stop: ['.', 'The end'], ignoreEos: false, returnFirstLogits: true },
    { prompt: { kind: 'ids', ids: [1, 2, 3] }, maxTokens: 1, sampling: { kind: 'random', temperature: 1, topK: 0, topP: 1, seed: 0n }, stop: [], ignoreEos: true, returnFirstLogits: false },
    { prompt: { kind: 'ids', ids: [7] }, maxTokens: 200, sampling: { kind: 'random', temperature: 0.25, topK: 3, topP: 0.5, seed: 2n ** 40n + 3n }, stop: [], ignoreEos: false, returnFirstLogits: false },
  ];
  requests.forEach((r, i) => {
    test(`round trip ${i}: ${r.prompt.kind} prompt, ${r.sampling.kind} sampling`, () => {
      assert.deepEqual(requestFromWire(requestToWire(r, 'm'), noHandles), r);
    });
  });

  test('defaults: unset max tokens means the default, no sampling means greedy', () => {
    assert.deepEqual(requestFromWire(wireRequest({ prompt: 'text', text: 'a' }), noHandles), {
      prompt: { kind: 'text', text: 'a' },
      maxTokens: DEFAULT_MAX_TOKENS,
      sampling: { kind: 'greedy' },
      stop: [],
      ignoreEos: false,
      returnFirstLogits: false,
    });
  });

  test('an absent text or id list reads as empty (the prompt check comes later, after tokenizing)', () => {
    assert.deepEqual(requestFromWire(wireRequest({ prompt: 'text' }), noHandles).prompt, { kind: 'text', text: '' });
    assert.deepEqual(requestFromWire(wireRequest({ prompt: 'tokenIds', tokenIds: null }), noHandles).prompt, { kind: 'ids', ids: [] });
  });

  test('greedy: true wins over any other sampling field', () => {
    const w = wireRequest({ prompt: 'text', text: 'a', sampling: { greedy: true, temperature: 0.5, topK: 5, topP: 0.5, seed: 9 } });
    assert.deepEqual(requestFromWire(w, noHandles).sampling, { kind: 'greedy' });
  });

  test('random sampling: top-p unset means 1, the seed becomes a bigint', () => {
    const w = wireRequest({ prompt: 'text', text: 'a', sampling: { greedy: false, temperature: 0.8, topK: 0, seed: 77 } });
    assert.deepEqual(requestFromWire(w, noHandles).sampling, { kind: 'random', temperature: 0.8, topK: 0, topP: 1, seed: 77n });
  });

  test('a prompt handle is resolved through the caller, with the handle it was sent', () => {
    const asked: string[] = [];
    const handles = (h: string) => {
      asked.push(h);
      return h === 'h1' ? [4, 5, 6] : undefined;
    };
    assert.deepEqual(requestFromWire(wireRequest({ prompt: 'promptHandle', promptHandle: 'h1' }), handles).prompt, { kind: 'ids', ids: [4, 5, 6] });
    assert.throws(() => requestFromWire(wireRequest({ prompt: 'promptHandle', promptHandle: 'gone' }), handles), isInvalid(/^unknown or expired prompt_handle "gone"$/));
    assert.deepEqual(asked, ['h1', 'gone']);
  });

  const random = (fields: Partial<{ temperature: number; topK: number; topP: number; seed: number }>) => ({
    sampling: { greedy: false, temperature: 1, topK: 0, topP: 1, seed: 1, ...fields },
  });
  const bad: { name: string; fields: Partial<WireRequest>; message: RegExp }[] = [
    { name: 'no prompt', fields: {}, message: /^the request has no prompt \(set text, token_ids or prompt_handle\)$/ },
    { name: 'an empty stop string', fields: { prompt: 'text', text: 'a', stop: ['ok', ''] }, message: /^stop strings must not be empty$/ },
    { name: 'temperature 0 with random sampling', fields: { prompt: 'text', text: 'a', ...random({ temperature: 0 }) }, message: /temperature must be a finite number > 0, got 0/ },
    { name: 'a negative temperature', fields: { prompt: 'text', text: 'a', ...random({ temperature: -1 }) }, message: /temperature must be a finite number > 0, got -1/ },
    { name: 'a negative top-k', fields: { prompt: 'text', text: 'a', ...random({ topK: -1 }) }, message: /^top_k must be an integer in \[0, 4294967295\], got -1$/ },
    { name: 'a fractional top-k', fields: { prompt: 'text', text: 'a', ...random({ topK: 2.5 }) }, message: /^top_k must be an integer in \[0, 4294967295\], got 2.5$/ },
    { name: 'top-p over 1', fields: { prompt: 'text', text: 'a', ...random({ topP: 1.5 }) }, message: /topP must be in \(0, 1\] \(1 = off\), got 1.5/ },
    { name: 'a negative top-p', fields: { prompt: 'text', text: 'a', ...random({ topP: -0.1 }) }, message: /topP must be in \(0, 1\]/ },
    { name: 'a negative seed', fields: { prompt: 'text', text: 'a', ...random({ seed: -1 }) }, message: /^seed must be an integer in \[0, 9007199254740991\], got -1$/ },
    { name: 'a fractional seed', fields: { prompt: 'text', text: 'a', ...random({ seed: 0.5 }) }, message: /seed must be an integer/ },
    { name: 'an explicit max_tokens 0', fields: { prompt: 'text', text: 'a', maxTokens: 0 }, message: /^max_tokens \(leave it unset for the default of 64\) must be an integer in \[1, 4294967295\], got 0$/ },
    { name: 'an explicit top-p 0', fields: { prompt: 'text', text: 'a', ...random({ topP: 0 }) }, message: /topP must be in \(0, 1\] \(1 = off\), got 0/ },
    { name: 'a seed above 2^53 - 1 (already rounded as a number)', fields: { prompt: 'text', text: 'a', ...random({ seed: 2 ** 53 }) }, message: /^seed must be an integer in \[0, 9007199254740991\], got 9007199254740992$/ },
  ];
  for (const b of bad) {
    test(`refuses ${b.name}`, () => {
      assert.throws(() => requestFromWire(wireRequest(b.fields), noHandles), isInvalid(b.message));
    });
  }
});

describe('events', () => {
  test('a token event without logits goes out with an empty buffer and comes back without', () => {
    const e: GenerationEvent = { type: 'token', index: 3, tokenId: 42, text: ' the' };
    const wire = eventToWire(e);
    assert.deepEqual(wire, { token: { index: 3, tokenId: 42, text: ' the', firstLogits: Buffer.alloc(0) } });
    assert.deepEqual(eventFromWire(wire), { ...e, firstLogits: undefined });
  });

  test('first logits come back bit-exact, even from a buffer at an odd offset', () => {
    const logits = new Float32Array([0.5, -1e30, NaN, -0, 3]);
    const wire = eventToWire({ type: 'token', index: 0, tokenId: 1, text: 'a', firstLogits: logits });
    assert.equal(wire.token!.firstLogits.byteLength, 20);
    // As received: the bytes inside a larger pooled buffer, not 4-byte aligned.
    const pool = Buffer.alloc(21);
    wire.token!.firstLogits.copy(pool, 1);
    const received: WireEvent = { token: { ...wire.token!, firstLogits: pool.subarray(1) } };
    const back = eventFromWire(received);
    assert.equal(back.type, 'token');
    const got = back.type === 'token' ? back.firstLogits! : new Float32Array();
    assert.deepEqual([...new Uint32Array(got.buffer, got.byteOffset, got.length)], [...new Uint32Array(logits.buffer)]);
  });

  const reasons = [
    ['eos', 'FINISH_REASON_EOS'],
    ['length', 'FINISH_REASON_LENGTH'],
    ['stop', 'FINISH_REASON_STOP'],
  ] as const;
  for (const [reason, wireReason] of reasons) {
    test(`finish "${reason}" is ${wireReason} on the wire and back`, () => {
      const e: GenerationEvent = { type: 'finish', reason, text: 'tail', promptTokens: 7, generatedTokens: 12, timeToFirstTokenMs: 33.5, totalMs: 410.25, resumes: 2 };
      const wire = eventToWire(e);
      assert.deepEqual(wire, { finish: { reason: wireReason, text: 'tail', promptTokens: 7, generatedTokens: 12, timeToFirstTokenMs: 33.5, totalMs: 410.25, resumes: 2 } });
      assert.deepEqual(eventFromWire(wire), e);
    });
  }

  test('an unspecified finish reason reads as "length"', () => {
    const wire: WireEvent = { finish: { reason: 'FINISH_REASON_UNSPECIFIED', text: '', promptTokens: 1, generatedTokens: 0, timeToFirstTokenMs: 0, totalMs: 0, resumes: 0 } };
    assert.equal((eventFromWire(wire) as { reason: string }).reason, 'length');
  });
});

/**
 * Every numeric field of GenerateRequest at and beyond its bounds, through grpc-js's own
 * serializer and deserializer: what a client sends is what the coordinator reads, or the
 * sending side refuses it (the encoder would wrap a uint32 and round a uint64).
 */
describe('numeric fields over the wire', () => {
  const method = boraProto().Inference.service.Generate;
  const overTheWire = (w: WireRequest): WireRequest => method.requestDeserialize(method.requestSerialize(w)) as WireRequest;
  const base: GenerationRequest = { prompt: { kind: 'ids', ids: [1] }, maxTokens: 1, sampling: { kind: 'greedy' }, stop: [], ignoreEos: false, returnFirstLogits: false };
  const random = (fields: Partial<{ temperature: number; topK: number; topP: number; seed: bigint }>): GenerationRequest['sampling'] => ({ kind: 'random', temperature: 1, topK: 0, topP: 1, seed: 1n, ...fields });

  const accepted: { name: string; request: GenerationRequest }[] = [
    { name: 'max_tokens 1', request: { ...base, maxTokens: 1 } },
    { name: 'max_tokens 2^32 - 1', request: { ...base, maxTokens: UINT32_MAX } },
    { name: 'token id 2^32 - 1', request: { ...base, prompt: { kind: 'ids', ids: [UINT32_MAX] } } },
    { name: 'top_k 2^32 - 1', request: { ...base, sampling: random({ topK: UINT32_MAX }) } },
    { name: 'top_p 1', request: { ...base, sampling: random({ topP: 1 }) } },
    { name: 'top_p 0.5 (exact in float32)', request: { ...base, sampling: random({ topP: 0.5 }) } },
    { name: 'seed 0', request: { ...base, sampling: random({ seed: 0n }) } },
    { name: 'seed 2^53 - 1', request: { ...base, sampling: random({ seed: 2n ** 53n - 1n }) } },
    { name: 'temperature 2^-10 (exact in float32)', request: { ...base, sampling: random({ temperature: 2 ** -10 }) } },
  ];
  for (const a of accepted) {
    test(`${a.name} arrives unchanged`, () => {
      assert.deepEqual(requestFromWire(overTheWire(requestToWire(a.request)), noHandles), a.request);
    });
  }

  const refusedBySender: { name: string; request: GenerationRequest; message: RegExp }[] = [
    { name: 'max_tokens 2^32 + 1 (would wrap to 1)', request: { ...base, maxTokens: 2 ** 32 + 1 }, message: /^max_tokens must be an integer in \[1, 4294967295\], got 4294967297$/ },
    { name: 'max_tokens 2^32 (would wrap to 0)', request: { ...base, maxTokens: 2 ** 32 }, message: /max_tokens must be an integer in \[1, 4294967295\]/ },
    { name: 'max_tokens 0', request: { ...base, maxTokens: 0 }, message: /max_tokens must be an integer in \[1, 4294967295\], got 0/ },
    { name: 'token id 2^32', request: { ...base, prompt: { kind: 'ids', ids: [1, 2 ** 32] } }, message: /^prompt token id #1 must be an integer in \[0, 4294967295\], got 4294967296$/ },
    { name: 'top_k 2^32', request: { ...base, sampling: random({ topK: 2 ** 32 }) }, message: /^top_k must be an integer in \[0, 4294967295\]/ },
    { name: 'seed 2^53 (would round)', request: { ...base, sampling: random({ seed: 2n ** 53n }) }, message: /^seed must be an integer in \[0, 9007199254740991\]/ },
    { name: 'seed 2^64 - 1', request: { ...base, sampling: random({ seed: 2n ** 64n - 1n }) }, message: /^seed must be an integer in \[0, 9007199254740991\]/ },
  ];
  for (const r of refusedBySender) {
    test(`the sender refuses ${r.name}`, () => {
      assert.throws(() => requestToWire(r.request), isInvalid(r.message));
    });
  }

  test('max_tokens: unset and an explicit 0 are told apart on the wire', () => {
    const unset = overTheWire(wireRequest({ prompt: 'text', text: 'a' }));
    assert.equal(unset.maxTokens, undefined);
    assert.equal(requestFromWire(unset, noHandles).maxTokens, DEFAULT_MAX_TOKENS);
    const zero = overTheWire(wireRequest({ prompt: 'text', text: 'a', maxTokens: 0 }));
    assert.equal(zero.maxTokens, 0);
    assert.throws(() => requestFromWire(zero, noHandles), isInvalid(/max_tokens .* got 0$/));
  });

  test('top_p: unset and an explicit 0 are told apart on the wire', () => {
    const sampling = { greedy: false, temperature: 1, topK: 0, seed: 3 };
    const unset = overTheWire(wireRequest({ prompt: 'text', text: 'a', sampling }));
    assert.deepEqual(requestFromWire(unset, noHandles).sampling, { kind: 'random', temperature: 1, topK: 0, topP: 1, seed: 3n });
    const zero = overTheWire(wireRequest({ prompt: 'text', text: 'a', sampling: { ...sampling, topP: 0 } }));
    assert.throws(() => requestFromWire(zero, noHandles), isInvalid(/topP must be in \(0, 1\]/));
  });

  test('a uint64 seed above 2^53 sent by another client (as a string) is refused, not rounded', () => {
    const w = { ...wireRequest({ prompt: 'text', text: 'a' }), sampling: { greedy: false, temperature: 1, topK: 0, topP: 1, seed: '18446744073709551615' } };
    const received = method.requestDeserialize(method.requestSerialize(w as unknown as WireRequest)) as WireRequest;
    assert.throws(() => requestFromWire(received, noHandles), isInvalid(/^seed must be an integer in \[0, 9007199254740991\]/));
  });

  test('ChatTurn.max_tokens has presence too', () => {
    const chat = boraProto().Inference.service.Chat;
    const back = (turn: object) => chat.requestDeserialize(chat.requestSerialize(turn)) as { maxTokens?: number };
    assert.equal(back({ user: 'hi' }).maxTokens, undefined);
    assert.equal(back({ user: 'hi', maxTokens: 0 }).maxTokens, 0);
    assert.equal(maxTokensFromWire(undefined), DEFAULT_MAX_TOKENS);
    assert.throws(() => maxTokensFromWire(0), isInvalid(/got 0$/));
  });
});
