/**
 * TextSink with an output filter: token events carry only released text, a redaction shows in
 * the stream, a block ends the sequence at that token (onToken says stop) with a content_filter
 * finish, and at a normal end the held-back tail is released in the finish event.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import type { GenerationEvent, GenerationRequest } from '../../../common/generation/request';
import { HIDDEN_TOKEN_ID } from '../../../common/generation/text-filter';
import { TextSink } from '../../../common/generation/text-sink';
import { eventToWire } from '../../../common/wire/generate-codec';
import { parseModelConfig } from '../../../common/model/config';
import { loadTokenizer } from '../../../common/tokenizer/load-tokenizer';
import type { Tokenizer } from '../../../common/tokenizer/tokenizer';
import { parsePolicy } from '../../../coordinator/safety/policy-file';
import { SafetyFilter } from '../../../coordinator/safety/safety-filter';
import { fixtureDir } from '../../support/checkpoints';

const request = (maxTokens: number): GenerationRequest => ({ prompt: { kind: 'ids', ids: [1] }, maxTokens, sampling: { kind: 'greedy' }, stop: [], ignoreEos: true, returnFirstLogits: false });

function filterOf(rules: unknown[]) {
  return new SafetyFilter({ policy: parsePolicy(JSON.stringify({ rules })) }).openOutput({ request: 'r', who: 'test' });
}

/** Feeds `ids` to a sink until it says stop; returns the events and how many tokens it took. */
function run(tokenizer: Tokenizer, ids: readonly number[], filter: ReturnType<typeof filterOf>): { events: GenerationEvent[]; fed: number } {
  const events: GenerationEvent[] = [];
  const sink = new TextSink(tokenizer, request(ids.length), 1, { onEvent: (e) => events.push(e), onError: (err) => assert.fail(err) }, filter);
  let fed = 0;
  for (const [i, id] of ids.entries()) {
    fed++;
    if (sink.onToken(id, i, new Float32Array(1))) break;
  }
  return { events, fed };
}

describe('TextSink with a safety filter', () => {
  let tokenizer: Tokenizer;
  before(async () => {
    const dir = fixtureDir('tiny-mistral');
    tokenizer = await loadTokenizer(dir, parseModelConfig(readFileSync(join(dir, 'config.json'), 'utf8'), 'config.json'));
  });

  test('redacts in the stream and releases the held tail at the end', () => {
    const ids = tokenizer.encode('the quick brown fox sleeps', { addBos: false });
    const { events, fed } = run(tokenizer, ids, filterOf([{ id: 'colour', kind: 'deny', phrases: ['brown fox'], action: 'redact' }]));
    assert.equal(fed, ids.length);
    const finish = events.at(-1)!;
    assert.equal(finish.type === 'finish' && finish.reason, 'length');
    assert.equal(events.map((e) => e.text).join(''), tokenizer.decode(ids).replace('brown fox', '[redacted]'));
    // Every token has its event, in order; those whose text was redacted are marked filtered.
    const tokens = events.filter((e) => e.type === 'token');
    assert.deepEqual(tokens.map((e) => e.index), ids.map((_, i) => i));
    const hidden = tokens.flatMap((e, i) => (e.type === 'token' && e.filtered === true ? [i] : []));
    assert.ok(hidden.length > 0);
    assert.deepEqual(tokens.map((e) => e.type === 'token' && e.tokenId), ids, 'the domain events keep the real ids');
    // On the wire a filtered token's id is hidden.
    const wire = tokens.map((e) => eventToWire(e).token!.tokenId);
    assert.deepEqual(wire, ids.map((id, i) => (hidden.includes(i) ? HIDDEN_TOKEN_ID : id)));
    const first = hidden[0]!;
    const last = hidden[hidden.length - 1]!;
    assert.deepEqual(hidden, Array.from({ length: last - first + 1 }, (_, k) => first + k), 'the hidden tokens are one run');
    assert.match(tokenizer.decode(ids.slice(first, last + 1)), /brown fox/);
    assert.doesNotMatch(tokenizer.decode(ids.slice(0, first)), /brown/);
  });

  test('a token event waits until the filter has settled its text', () => {
    const ids = tokenizer.encode('a fo', { addBos: false });
    const filter = filterOf([{ id: 'animal', kind: 'deny', phrases: ['fox'], action: 'redact' }]);
    const events: GenerationEvent[] = [];
    const sink = new TextSink(tokenizer, request(ids.length + 1), 1, { onEvent: (e) => events.push(e), onError: (err) => assert.fail(err) }, filter);
    ids.forEach((id, i) => sink.onToken(id, i, new Float32Array(1)));
    // "fo" could still become "fox": the token(s) carrying it have not gone out.
    const shown = events.map((e) => e.text).join('');
    assert.ok(!shown.includes('fo'), `shown ${JSON.stringify(shown)}`);
    assert.ok(events.length < ids.length, `${events.length} of ${ids.length} token events out`);
  });

  test('a block stops the sequence at the token that settles it, with content_filter', () => {
    const ids = tokenizer.encode('the quick brown fox jumps over the lazy dog', { addBos: false });
    const { events, fed } = run(tokenizer, ids, filterOf([{ id: 'animal', kind: 'deny', phrases: ['fox'], action: 'block' }]));
    assert.ok(fed < ids.length, `stopped after ${fed} of ${ids.length} tokens`);
    const finish = events.at(-1)!;
    assert.equal(finish.type, 'finish');
    assert.equal(finish.type === 'finish' && finish.reason, 'content_filter');
    assert.equal(finish.type === 'finish' && finish.generatedTokens, fed);
    const text = events.map((e) => e.text).join('');
    assert.equal(text, tokenizer.decode(ids).slice(0, tokenizer.decode(ids).indexOf('fox')));
  });
});
