/**
 * The byte limit on prompt text, checked before any tokenizing. Tokenizing is the one step whose
 * cost a client controls with a single field, and it is far from linear (a 64 KiB prompt takes
 * about 0.9 s on the Mistral v1 tokenizer, 1 MiB about 27 s), so the length has to be refused
 * from the byte count, which costs nothing, not from the token count, which costs the tokenizing.
 */
import { InvalidArgumentError } from '../errors';

/**
 * Default UTF-8 bytes of prompt text a request (or a chat turn, or an uploaded prompt) may carry:
 * 128 KiB, about 32k tokens of English, Mistral's whole context, so no prompt that could run is
 * refused, while the longest tokenizing a request can ask for stays about 2 s.
 */
export const DEFAULT_MAX_PROMPT_BYTES = 128 * 1024;

/**
 * The largest limit an operator may configure (16 MiB, the size of the messages between nodes).
 */
export const MAX_PROMPT_BYTES_CEILING = 16 * 1024 * 1024;

/**
 * Bytes of a request beside its prompt text: sampling, stop strings, and token ids (a 128k-token
 * prompt is at most 640 KiB of varints).
 */
export const REQUEST_OVERHEAD_BYTES = 1024 * 1024;

/**
 * Bytes of one message the client API (the coordinator's port: Inference and WeightSource)
 * accepts when the coordinator allows `maxPromptBytes` of prompt text: that plus
 * REQUEST_OVERHEAD_BYTES. Every other request on that port (WeightSource's FetchTensor, Status,
 * Drain) is a few hundred bytes; what the port sends (1 MiB tensor chunks, token events) is not
 * bounded by this. grpc-js refuses a larger message with RESOURCE_EXHAUSTED from its 5-byte
 * length prefix, before it is decoded and without buffering it: a 10 MiB prompt sent to a
 * coordinator that allows 1 MiB costs the coordinator next to nothing, where decoding it first
 * and refusing it from the prompt check cost each other stream tens of milliseconds (seen as a
 * doubled inter-token p99 in chaos scenario S12).
 */
export function clientRequestLimitBytes(maxPromptBytes: number): number {
  return maxPromptBytes + REQUEST_OVERHEAD_BYTES;
}

/**
 * Refuses text of more than `maxBytes` UTF-8 bytes, counting `priorBytes` already accepted (the
 * earlier pieces of an upload); `what` names the field in the message.
 */
export function checkPromptBytes(text: string, maxBytes: number, what = 'the prompt text', priorBytes = 0): void {
  const room = maxBytes - priorBytes;
  // UTF-8 takes one to three bytes per UTF-16 unit: the length alone decides the clear cases
  // (a 10 MB prompt is refused without being walked).
  if (text.length * 3 <= room) return;
  const bytes = text.length > room ? undefined : Buffer.byteLength(text, 'utf8');
  if (bytes === undefined || bytes > room) {
    const size = bytes === undefined ? `at least ${priorBytes + text.length}` : `${priorBytes + bytes}`;
    throw new InvalidArgumentError(`${what} is ${size} bytes; the limit is ${maxBytes} bytes of UTF-8 (the coordinator's --max-prompt-bytes)`);
  }
}
