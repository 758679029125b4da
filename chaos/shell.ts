/**
 * Running the machine's tools (ip, tc, ss) from the harness: synchronously, because topology and
 * fault changes must be in place before the harness records their time, and because cleanup
 * also has to run from a signal handler or an `exit` listener, where nothing asynchronous runs.
 */
import { spawnSync } from 'node:child_process';

export class CommandError extends Error {
  constructor(
    readonly argv: readonly string[],
    readonly status: number | null,
    readonly stderr: string,
  ) {
    super(`\`${argv.join(' ')}\` failed (status ${status ?? 'killed'}): ${stderr.trim() || '(no output)'}`);
    this.name = 'CommandError';
  }
}

/** A tool call's result; `ok` is exit status 0. */
export interface CommandResult {
  readonly ok: boolean;
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

const COMMAND_TIMEOUT_MS = 10_000;

/** Runs argv[0] with the rest as arguments; never throws. */
export function tryRun(argv: readonly string[]): CommandResult {
  const [command, ...args] = argv;
  const result = spawnSync(command, args, { encoding: 'utf8', timeout: COMMAND_TIMEOUT_MS });
  if (result.error !== undefined) return { ok: false, status: null, stdout: '', stderr: result.error.message };
  return { ok: result.status === 0, status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** Runs argv and returns its stdout; throws CommandError when it fails. */
export function run(argv: readonly string[]): string {
  const result = tryRun(argv);
  if (!result.ok) throw new CommandError(argv, result.status, result.stderr);
  return result.stdout;
}

/** argv run inside network namespace `netns` (or in the root namespace when undefined). */
export function inNetns(netns: string | undefined, argv: readonly string[]): string[] {
  return netns === undefined ? [...argv] : ['ip', 'netns', 'exec', netns, ...argv];
}
