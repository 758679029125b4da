/**
 * bora chat: a conversation with a cluster over the Chat RPC. Each line on stdin is one user
 * turn; the reply streams to stdout as it is generated, then a newline. --system TEXT gives the
 * conversation a system message (the model's chat template places it). Reaches the coordinator as
 * generate does: --coordinator HOST:PORT or the one of --state-dir D, with the same security
 * flags (--ca/--cert/--key/--api-key, BORA_API_KEY, or D/cluster.json's client credentials).
 */
import { createInterface } from 'node:readline';
import { resolve } from 'node:path';
import { InvalidArgumentError } from '../common/errors';
import { DEFAULT_MAX_TOKENS } from '../common/generation/request';
import { NON_NEGATIVE, UINT32, intFlag, parseFlags } from './args';
import { ChatSession } from './chat-session';
import { ACCESS_FLAGS, resolveAccess } from './client-access';
import { type ClusterFile, readClusterFile } from './cluster-file';
import { SAMPLING_FLAGS, samplingFrom } from './generate';

const FLAGS = {
  coordinator: { type: 'string' },
  'state-dir': { type: 'string' },
  ...ACCESS_FLAGS,
  system: { type: 'string' },
  ...SAMPLING_FLAGS,
  'deadline-ms': { type: 'string' },
} as const;

export async function chatCommand(argv: string[]): Promise<void> {
  const { values } = parseFlags(argv, FLAGS);
  if (values.coordinator === undefined && values['state-dir'] === undefined) {
    throw new InvalidArgumentError('--coordinator HOST:PORT or --state-dir D is required');
  }
  const cluster: ClusterFile | undefined = values['state-dir'] === undefined ? undefined : readClusterFile(resolve(values['state-dir']));
  const coordinator = values.coordinator ?? cluster!.coordinator;
  const access = resolveAccess(values, cluster?.security, 'client');
  const maxTokens = intFlag(values['max-tokens'], '--max-tokens', DEFAULT_MAX_TOKENS, { min: 1, max: UINT32.max });
  const sampling = samplingFrom(values);
  const deadlineMs = intFlag(values['deadline-ms'], '--deadline-ms', 3_600_000, { min: 1, max: NON_NEGATIVE.max });
  const session = await ChatSession.open(coordinator, deadlineMs, access);
  const interactive = process.stdin.isTTY === true;
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false });
  let system = values.system;
  try {
    if (interactive) process.stderr.write('> ');
    for await (const line of lines) {
      if (line.trim() === '') continue;
      await session.turn(line, { maxTokens, sampling, system }, (event) => {
        if (event.text !== '') process.stdout.write(event.text);
      });
      system = undefined;
      process.stdout.write('\n');
      if (interactive) process.stderr.write('> ');
    }
  } finally {
    lines.close();
    session.close();
  }
}
