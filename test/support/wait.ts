/**
 * Waiting in tests on a real condition rather than for a guessed time: `eventually` polls a check
 * until it holds and fails, naming what it waited for, at a deadline.
 */

/** Polls `check` every 20 ms until it returns true; rejects naming `what` after `timeoutMs`. */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Resolves after every callback already queued (promise continuations, I/O, immediates) has run. */
export function turnOfEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
