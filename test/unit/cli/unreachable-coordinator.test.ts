/**
 * `bora generate --coordinator` and `bora status --coordinator` fail within 10 s with a clear
 * message and exit status 1 (unavailable) when no coordinator answers: a port nobody listens on
 * (refused) and a peer that accepts TCP connections but never speaks HTTP/2 (silent).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

const BORA = join(__dirname, '..', '..', '..', 'cli', 'bora.js');
const BOUND_MS = 10_000;

function runBora(args: string[]): Promise<{ code: number | null; stderr: string; ms: number }> {
  const start = performance.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BORA, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    // A hang would otherwise outlive the test: stop it after twice the bound.
    const kill = setTimeout(() => child.kill('SIGKILL'), 2 * BOUND_MS);
    child.on('exit', (code) => {
      clearTimeout(kill);
      resolve({ code, stderr, ms: performance.now() - start });
    });
  });
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
}

describe('the CLI gives up on an unreachable coordinator', () => {
  const sockets: Socket[] = [];
  const silent = createServer((socket) => sockets.push(socket)); // accepts, never answers
  let silentPort = 0;
  let closedPort = 0;
  before(async () => {
    silentPort = await listen(silent);
    const probe = createServer();
    closedPort = await listen(probe);
    await new Promise((r) => probe.close(r));
  });
  after(() => {
    for (const s of sockets) s.destroy();
    silent.close();
  });

  const cases: { name: string; args: () => string[]; message: RegExp }[] = [
    { name: 'generate, a silent peer', args: () => ['generate', '--coordinator', `127.0.0.1:${silentPort}`, '--prompt', 'hi'], message: /^bora: no coordinator answers at 127\.0\.0\.1:\d+ \(no connection within 5 s\)\n$/ },
    { name: 'generate, nothing listening', args: () => ['generate', '--coordinator', `127.0.0.1:${closedPort}`, '--prompt', 'hi'], message: /^bora: no coordinator answers at 127\.0\.0\.1:\d+ \(the connection failed\)\n$/ },
    { name: 'generate, two addresses, neither up', args: () => ['generate', '--coordinator', `127.0.0.1:${closedPort},127.0.0.1:${silentPort}`, '--prompt', 'hi'], message: /^bora: no coordinator answers at 127\.0\.0\.1:\d+, 127\.0\.0\.1:\d+ \(none of them connects\)\n$/ },
    { name: 'status, a silent peer', args: () => ['status', '--coordinator', `127.0.0.1:${silentPort}`], message: /^bora: no coordinator answers at 127\.0\.0\.1:\d+/ },
  ];
  for (const c of cases) {
    test(`${c.name}: exit 1 with a message in under ${BOUND_MS / 1000} s`, async () => {
      const r = await runBora(c.args());
      assert.match(r.stderr, c.message);
      assert.equal(r.code, 1);
      assert.ok(r.ms < BOUND_MS, `took ${r.ms} ms`);
    });
  }
});
