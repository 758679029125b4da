#!/usr/bin/env node
// npm run fuzz: the fuzz targets of test/unit/fuzz/ as a long campaign. BORA_FUZZ_RUNS cases per
// target (default 100000; the unit suite runs a few hundred each), BORA_FUZZ_SEED to replay a
// failure that fast-check reported. Expects a build (the npm script runs tsc first).
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = join(root, 'dist', 'test', 'unit', 'fuzz');
const files = readdirSync(dir).filter((f) => f.endsWith('.test.js')).sort().map((f) => join(dir, f));
const env = { ...process.env, BORA_FUZZ_RUNS: process.env.BORA_FUZZ_RUNS || '100000' };
console.log(`fuzz: ${files.length} files, ${env.BORA_FUZZ_RUNS} cases per target${env.BORA_FUZZ_SEED ? `, seed ${env.BORA_FUZZ_SEED}` : ''}`);
const run = spawnSync(process.execPath, ['--test', '--test-timeout=0', ...files], { stdio: 'inherit', env });
process.exit(run.status ?? 1);
