/**
 * Prompts uploaded in pieces with SubmitPrompt, kept under a random handle until used or expired.
 * Bounded in count and in total tokens so uploads cannot exhaust the coordinator's memory.
 */
import { randomUUID } from 'node:crypto';
import { ResourceExhaustedError } from '../common/errors';

export const PROMPT_TTL_MS = 5 * 60_000;
const MAX_PROMPTS = 1024;
const MAX_TOTAL_TOKENS = 16 * 1024 * 1024;

interface Stored {
  readonly ids: readonly number[];
  readonly expiresAtMs: number;
}

export class PromptStore {
  private readonly prompts = new Map<string, Stored>();
  private totalTokens = 0;

  constructor(private readonly now: () => number = Date.now) {}

  put(ids: readonly number[]): string {
    this.expire();
    if (this.prompts.size >= MAX_PROMPTS || this.totalTokens + ids.length > MAX_TOTAL_TOKENS) {
      throw new ResourceExhaustedError('too many uploaded prompts are waiting; use or let some expire first');
    }
    const handle = randomUUID();
    this.prompts.set(handle, { ids, expiresAtMs: this.now() + PROMPT_TTL_MS });
    this.totalTokens += ids.length;
    return handle;
  }

  get(handle: string): readonly number[] | undefined {
    this.expire();
    return this.prompts.get(handle)?.ids;
  }

  private expire(): void {
    const now = this.now();
    for (const [handle, stored] of this.prompts) {
      if (stored.expiresAtMs <= now) {
        this.prompts.delete(handle);
        this.totalTokens -= stored.ids.length;
      }
    }
  }
}
