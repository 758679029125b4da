#!/usr/bin/env node
// Builds Bora's native matrix kernels (common/kernels/*.c) into build/native/bora_kernels.node
// with the system C compiler and Node's own Node-API headers. Without a compiler or the headers it
// warns and exits 0: the engine then runs its linear layers with onnxruntime instead.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const srcDir = join(root, 'common', 'kernels');
const out = join(root, 'build', 'native', 'bora_kernels.node');
const sources = readdirSync(srcDir).filter((f) => f.endsWith('.c')).map((f) => join(srcDir, f));
const inputs = readdirSync(srcDir).filter((f) => f.endsWith('.c') || f.endsWith('.h')).map((f) => join(srcDir, f));

function warn(message) {
  console.warn(`build-kernels: ${message}; linear layers will run on onnxruntime (slower batch-1 decode)`);
  process.exit(0);
}

const headerDirs = [join(dirname(process.execPath), '..', 'include', 'node'), '/usr/include/node', '/usr/local/include/node'];
const headers = headerDirs.find((d) => existsSync(join(d, 'node_api.h')));
if (headers === undefined) warn(`no node_api.h in ${headerDirs.join(', ')}`);

if (existsSync(out)) {
  const built = statSync(out).mtimeMs;
  if (inputs.every((f) => statSync(f).mtimeMs <= built)) process.exit(0);
}

const cc = process.env.CC ?? 'cc';
mkdirSync(dirname(out), { recursive: true });
const args = ['-O3', '-std=gnu11', '-Wall', '-Wextra', '-Werror=implicit-function-declaration', '-shared', '-fPIC', '-pthread', `-I${headers}`, ...sources, '-lm', '-o', out];
try {
  execFileSync(cc, args, { stdio: ['ignore', 'inherit', 'inherit'] });
} catch (err) {
  warn(`${cc} failed (${err.code ?? err.status ?? err.message})`);
}
console.log(`build-kernels: built ${out.slice(root.length + 1)}`);
