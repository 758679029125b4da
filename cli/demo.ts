/**
 * npm start: the fresh-machine demo. Writes a small random checkpoint (Mistral v0.1 vocabulary,
 * so the text is real tokens, if not real sense), starts a local cluster of 3 workers, streams
 * one generation through it, and stops the cluster.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

const ROOT = resolve(__dirname, '..', '..');
const STATE = join(ROOT, 'state', 'demo');
const MODEL = join(ROOT, 'state', 'models', 'demo-mistral');
const BORA = join(__dirname, 'bora.js');

function bora(args: string[]): void {
  execFileSync(process.execPath, [BORA, ...args], { stdio: 'inherit' });
}

async function main(): Promise<void> {
  mkdirSync(STATE, { recursive: true });
  if (!existsSync(join(MODEL, 'config.json'))) {
    bora(['make-model', '--arch', 'mistral', '--hidden', '256', '--layers', '6', '--heads', '8', '--kv-heads', '2',
      '--intermediate', '768', '--sliding-window', '4096', '--vocab', '32000', '--dtype', 'bf16', '--seed', '7', '--out', MODEL]);
  }
  console.error('starting etcd, a coordinator and 3 workers ...');
  bora(['up', '--model', MODEL, '--workers', '3', '--state-dir', STATE]);
  try {
    bora(['status', '--state-dir', STATE]);
    const prompt = 'The capital of France is';
    console.error(`\nprompt: ${prompt}\ncompletion (streamed through 3 pipeline stages):`);
    await new Promise<void>((resolveRun, reject) => {
      const child = spawn(process.execPath, [BORA, 'generate', '--state-dir', STATE, '--prompt', prompt, '--max-tokens', '48', '--temperature', '0.8', '--top-p', '0.95', '--seed', '42'], { stdio: 'inherit' });
      child.on('exit', (code) => (code === 0 ? resolveRun() : reject(new Error(`generate exited with ${code}`))));
    });
  } finally {
    bora(['down', '--state-dir', STATE]);
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
