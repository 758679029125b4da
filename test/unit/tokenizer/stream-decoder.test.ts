import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { InternalError } from '../../../common/errors';
import { StreamDecoder } from '../../../common/tokenizer/stream-decoder';
import { loadTokenizer } from '../../../common/tokenizer/load-tokenizer';
import { type Tokenizer } from '../../../common/tokenizer/tokenizer';

/** v0.1 ids of the byte-fallback pieces <0xNN> are 3 + NN. */
const byteId = (byte: number): number => 3 + byte;
const EURO_BYTES = [0xe2, 0x82, 0xac].map(byteId);
const HELLO = 22557;

/** Pushes ids one at a time; returns every chunk, flush() last. */
function stream(tok: Tokenizer, ids: readonly number[]): string[] {
  const decoder = new StreamDecoder(tok);
  const chunks = ids.map((id) => decoder.push(id));
  chunks.push(decoder.flush());
  return chunks;
}

describe('StreamDecoder (Mistral v0.1 vocabulary)', () => {
  let emptyDir: string;
  let tok: Tokenizer;

  before(async () => {
    emptyDir = await mkdtemp(join(tmpdir(), 'bora-stream-'));
    tok = await loadTokenizer(emptyDir, { bosTokenId: 1, eosTokenId: 2 });
  });
  after(async () => {
    await rm(emptyDir, { recursive: true, force: true });
  });

  test('streamed chunks add up to decode(all), with no partial characters', () => {
    const ids = tok.encode('Hello, wörld € 你好');
    const chunks = stream(tok, ids);
    assert.equal(chunks.join(''), tok.decode(ids));
    assert.equal(chunks.join(''), 'Hello, wörld € 你好');
    for (const chunk of chunks) assert.ok(!chunk.includes('\uFFFD'), JSON.stringify(chunks));
    // The leading-space piece before 你 comes out as its own ' ', not stripped.
    assert.deepEqual(chunks.slice(0, 4), ['', 'Hello', ',', ' w']);
  });

  test('a character split over byte-fallback tokens comes out once all its bytes arrived', () => {
    assert.deepEqual(stream(tok, [HELLO, ...EURO_BYTES]), ['Hello', '', '', '€', '']);
    // At the very start too, and for a 4-byte character.
    assert.deepEqual(stream(tok, EURO_BYTES), ['', '', '€', '']);
    const llama = tok.encode('🦙', { addBos: false });
    const chunks = stream(tok, llama);
    assert.equal(chunks.join(''), '🦙');
    assert.ok(chunks.every((c) => c === '' || c === '🦙'), JSON.stringify(chunks));
  });

  test('flush() gives up on an incomplete character as U+FFFD', () => {
    const decoder = new StreamDecoder(tok);
    assert.equal(decoder.push(HELLO), 'Hello');
    assert.equal(decoder.push(EURO_BYTES[0]), '');
    assert.equal(decoder.push(EURO_BYTES[1]), '');
    assert.equal(decoder.flush(), '\uFFFD');
    assert.equal(decoder.flush(), '');
    assert.throws(() => decoder.push(HELLO), InternalError);
  });

  test('special tokens in the stream add no text and do not disturb spacing', () => {
    const ids = [1, HELLO, 2, ...tok.encode(' world and € 你', { addBos: false })];
    assert.equal(stream(tok, ids).join(''), tok.decode(ids));
  });

  test('matches decode(all) on many texts, including stray bytes', () => {
    const parts = ['Hello', ' ', ',', 'ö', '€', '你好', '🦙', '\n', '  ', 'x y', 'é', 'The capital', ' of'];
    let state = 12345; // a fixed LCG, so the cases are the same on every run
    const next = (n: number): number => {
      state = (state * 1103515245 + 12345) % 2147483648;
      return state % n;
    };
    for (let trial = 0; trial < 300; trial++) {
      let text = '';
      for (let i = next(10); i > 0; i--) text += parts[next(parts.length)];
      const ids = tok.encode(text, { addBos: next(2) === 0 });
      if (next(4) === 0) ids.splice(next(ids.length + 1), 0, byteId(0x80 + next(128))); // a stray byte
      const chunks = stream(tok, ids);
      assert.equal(chunks.join(''), tok.decode(ids), JSON.stringify({ text, ids }));
    }
  });
});
