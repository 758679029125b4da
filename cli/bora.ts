#!/usr/bin/env node
/**
 * The bora command line. Each subcommand lives in its own file; this one only dispatches and
 * turns errors into a message and an exit status (2 for bad input, 1 otherwise).
 */
import { BoraError, asBoraError } from '../common/errors';
import { chatCommand } from './chat';
import { downCommand, drainCommand, statusCommand, upCommand } from './cluster';
import { coordinatorCommand } from './coordinator';
import { etcdRbacCommand } from './etcd-rbac';
import { generateCommand } from './generate';
import { makeModelCommand } from './make-model';
import { modelsCommand } from './models';
import { pkiCommand } from './pki';
import { quantizeCommand } from './quantize';
import { quietIpServernameWarning } from './quiet-warnings';
import { workerCommand } from './worker';

type Command = (argv: string[]) => Promise<void>;

const COMMANDS: Record<string, { run: Command; help: string }> = {
  generate: { run: generateCommand, help: 'generate text in this process (--model DIR or FILE.gguf) or on a cluster (--coordinator HOST:PORT)' },
  chat: { run: chatCommand, help: 'chat with a cluster: one user turn per stdin line, replies streamed (--coordinator HOST:PORT [--system TEXT])' },
  'make-model': { run: makeModelCommand, help: 'write a random hub-format checkpoint of any size' },
  quantize: { run: quantizeCommand, help: 'write a checkpoint directory as a GGUF file (--model DIR --type q8_0|q4_0|q4_k_m|f16|bf16|f32 --out FILE.gguf)' },
  worker: { run: workerCommand, help: 'run a worker node: registers in etcd, serves the layers the plan gives it' },
  coordinator: { run: coordinatorCommand, help: 'run a coordinator: placement, plans, the client API' },
  up: { run: upCommand, help: 'start etcd, a coordinator and N workers on 127.0.0.1 (--state-dir D; --insecure: plaintext, development only)' },
  down: { run: downCommand, help: 'stop the cluster of --state-dir D' },
  drain: { run: drainCommand, help: 'move a worker\'s layers to the others, then stop it (--state-dir D WORKER_ID)' },
  status: { run: statusCommand, help: "print a cluster's status (--state-dir D or --coordinator HOST:PORT)" },
  models: { run: modelsCommand, help: 'the model registry: models add NAME@VERSION PATH | list | remove NAME@VERSION (--state-dir D or --coordinator HOST:PORT)' },
  pki: { run: pkiCommand, help: 'cluster CA, node certificates and API keys: pki init | issue | api-key --dir D' },
  'etcd-rbac': { run: etcdRbacCommand, help: "give a TLS etcd Bora's users and roles and enable auth (--etcd https://... --workers w1,w2 ...)" },
};

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(12)} ${c.help}`);
  return `usage: bora <command> [flags]\n\ncommands:\n${lines.join('\n')}\n`;
}

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return;
  }
  const command = COMMANDS[name];
  if (command === undefined) throw new BoraError('INVALID_ARGUMENT', `unknown command "${name}"\n\n${usage()}`);
  await command.run(rest);
}

quietIpServernameWarning();
main(process.argv.slice(2)).then(
  () => {
    process.exitCode ??= 0;
  },
  (err: unknown) => {
    const bora = asBoraError(err);
    process.stderr.write(`bora: ${bora.message}\n`);
    if (bora.code === 'INTERNAL' && process.env.BORA_DEBUG !== undefined) process.stderr.write(`${(err as Error).stack}\n`);
    process.exitCode = bora.code === 'INVALID_ARGUMENT' || bora.code === 'CHECKPOINT_INVALID' ? 2 : 1;
  },
);
