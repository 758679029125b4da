/**
 * Runs a tokenizer.json decoder: each step maps the list of token strings to a new list, and the
 * result is their concatenation. Steps behave as in Hugging Face tokenizers, with one deliberate
 * difference: ByteFallback decodes a run of <0xNN> bytes leniently (one U+FFFD per maximal
 * invalid subsequence, as TextDecoder does) where tokenizers writes one U+FFFD per byte of a run
 * that is not valid as a whole. The two agree on valid UTF-8; the lenient form keeps decoding
 * prefix-stable (a complete character, once decoded, is never turned into U+FFFD by a later
 * stray byte), which streaming output depends on.
 */
import type { DecoderStep } from './hf-tokenizer-file';

const BYTE_PIECE = /^<0x([0-9A-Fa-f]{2})>$/;

function decodeByteRuns(tokens: readonly string[]): string[] {
  const utf8 = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
  const out: string[] = [];
  let run: number[] = [];
  const flushRun = (): void => {
    if (run.length > 0) out.push(utf8.decode(Uint8Array.from(run)));
    run = [];
  };
  for (const token of tokens) {
    const byte = BYTE_PIECE.exec(token);
    if (byte === null) {
      flushRun();
      out.push(token);
    } else {
      run.push(parseInt(byte[1], 16));
    }
  }
  flushRun();
  return out;
}

/** Removes up to `start` leading and `stop` trailing occurrences of the single character `content`. */
function strip(token: string, content: string, start: number, stop: number): string {
  let from = 0; // code-unit index where the kept text begins
  for (let n = 0; n < start && token.startsWith(content, from); n++) from += content.length;
  let to = token.length; // code-unit index where the kept text ends
  for (let n = 0; n < stop && to - content.length >= from && token.endsWith(content, to); n++) to -= content.length;
  return token.slice(from, to);
}

function applyStep(step: DecoderStep, tokens: readonly string[]): string[] {
  switch (step.kind) {
    case 'replace':
      return tokens.map((t) => t.replaceAll(step.pattern, step.content));
    case 'byte-fallback':
      return decodeByteRuns(tokens);
    case 'fuse':
      return [tokens.join('')];
    case 'strip':
      return tokens.map((t) => strip(t, step.content, step.start, step.stop));
    case 'metaspace':
      // The first token drops its space markers altogether (they can only be the dummy prefix);
      // later tokens turn them back into spaces.
      return tokens.map((t, i) =>
        t.replaceAll(step.replacement, i === 0 && step.prependScheme !== 'never' ? '' : ' '),
      );
  }
}

/** Decodes token strings (special tokens already removed) with the given decoder steps. */
export function runDecoder(steps: readonly DecoderStep[], tokens: readonly string[]): string {
  let current: readonly string[] = tokens;
  for (const step of steps) current = applyStep(step, current);
  return current.join('');
}
