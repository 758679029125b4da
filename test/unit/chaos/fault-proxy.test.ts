/**
 * The chaos harness's TCP fault proxy (chaos/fault-proxy.ts) on 127.0.0.1: bytes arrive exactly
 * as sent in both directions, each chunk's delay stays within delay +/- jitter and the
 * counters say so, chunks never overtake each other, resets reach the client as ECONNRESET,
 * drops close without one, and a fault set back to none adds no delay.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { drawDelayMs, FaultProxy, NO_FAULTS } from '../../../chaos/fault-proxy';
import { seededRandom } from '../../../chaos/workload';

const HOST = '127.0.0.1';

/** An echo server (every byte back), also counting the bytes and connections it saw. */
function echoServer(): Promise<{ server: Server; port: number; sockets: Socket[] }> {
  const sockets: Socket[] = [];
  const server = createServer((s) => {
    sockets.push(s);
    s.on('error', () => undefined);
    s.pipe(s);
  });
  return new Promise((resolve) => server.listen(0, HOST, () => resolve({ server, port: (server.address() as { port: number }).port, sockets })));
}

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, HOST, () => resolve(s));
    s.once('error', reject);
  });
}

/** Sends `data` in `pieces` writes and collects the echo until `data.length` bytes came back. */
async function roundTrip(socket: Socket, data: Buffer, pieces: number): Promise<{ echo: Buffer; arrivalsMs: number[] }> {
  const chunks: Buffer[] = [];
  const arrivalsMs: number[] = [];
  let got = 0;
  const done = new Promise<void>((resolve) => {
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      arrivalsMs.push(performance.now());
      got += c.length;
      if (got >= data.length) resolve();
    });
  });
  const size = Math.ceil(data.length / pieces);
  for (let i = 0; i < data.length; i += size) {
    socket.write(data.subarray(i, i + size));
    await new Promise((r) => setTimeout(r, 2));
  }
  await done;
  return { echo: Buffer.concat(chunks), arrivalsMs };
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('fault proxy', () => {
  let echo: Awaited<ReturnType<typeof echoServer>>;
  before(async () => {
    echo = await echoServer();
  });
  after(() => echo.server.close());

  async function proxy(seed = 1): Promise<{ proxy: FaultProxy; port: number }> {
    const p = new FaultProxy({ host: HOST, port: 0 }, { host: HOST, port: echo.port }, seededRandom(seed));
    return { proxy: p, port: await p.start() };
  }

  test('drawn delays stay within delay +/- jitter and cover the range', () => {
    const random = seededRandom(3);
    const draws = Array.from({ length: 5000 }, () => drawDelayMs({ delayMs: 100, jitterMs: 50 }, random));
    assert.ok(Math.min(...draws) >= 50 && Math.max(...draws) <= 150, `${Math.min(...draws)}..${Math.max(...draws)}`);
    assert.ok(Math.min(...draws) < 55 && Math.max(...draws) > 145, 'the jitter spans its range');
    assert.equal(drawDelayMs(NO_FAULTS, random), 0);
  });

  test('without faults it forwards 4 MiB byte-exact both ways and delays nothing', async () => {
    const { proxy: p, port } = await proxy();
    try {
      const socket = await open(port);
      const data = randomBytes(4 * 1024 * 1024);
      const { echo: back } = await roundTrip(socket, data, 64);
      assert.equal(back.length, data.length);
      assert.equal(sha(back), sha(data));
      socket.destroy();
      const s = p.stats();
      assert.equal(s.chunksDelayed, 0);
      assert.equal(s.bytesForwarded, 2 * data.length, 'each byte counted once per direction');
      assert.equal(s.connections, 1);
    } finally {
      await p.stop();
    }
  });

  test('with 100 +/- 50 ms each way, a round trip takes 100..300 ms, bytes stay exact and in order, counters record it', async () => {
    const { proxy: p, port } = await proxy(5);
    p.setFaults({ delayMs: 100, jitterMs: 50 });
    try {
      const socket = await open(port);
      for (let i = 0; i < 5; i++) {
        const data = randomBytes(1000);
        const t0 = performance.now();
        const { echo: back } = await roundTrip(socket, data, 1);
        const rtt = performance.now() - t0;
        assert.equal(sha(back), sha(data), `round ${i}: bytes`);
        assert.ok(rtt >= 100 - 5 && rtt <= 300 + 80, `round ${i}: round trip ${rtt.toFixed(0)} ms`);
      }
      // Many small chunks with jitter: reassembled in order.
      const stream = randomBytes(200_000);
      const { echo: back } = await roundTrip(socket, stream, 100);
      assert.equal(sha(back), sha(stream), 'jittered chunks never overtake each other');
      socket.destroy();
      const s = p.stats();
      assert.ok(s.chunksDelayed >= 10, `${s.chunksDelayed} chunks delayed`);
      assert.ok(s.minDelayMs! >= 50 && s.maxDelayMs! <= 150, `${s.minDelayMs}..${s.maxDelayMs}`);
    } finally {
      await p.stop();
    }
  });

  test('back to no faults: no more chunks are delayed', async () => {
    const { proxy: p, port } = await proxy();
    p.setFaults({ delayMs: 40, jitterMs: 10 });
    p.setFaults(NO_FAULTS);
    try {
      const socket = await open(port);
      await roundTrip(socket, randomBytes(5000), 5);
      socket.destroy();
      assert.equal(p.stats().chunksDelayed, 0);
    } finally {
      await p.stop();
    }
  });

  test('invalid faults are refused', () => {
    const p = new FaultProxy({ host: HOST, port: 0 }, { host: HOST, port: 1 });
    assert.throws(() => p.setFaults({ delayMs: 10, jitterMs: 20 }), /jitter <= delay/);
    assert.throws(() => p.setFaults({ delayMs: -1, jitterMs: 0 }), /invalid/);
  });

  test('resetAll aborts every open connection with a RST (ECONNRESET at the client) and counts them', async () => {
    const { proxy: p, port } = await proxy();
    try {
      const sockets = await Promise.all([open(port), open(port), open(port)]);
      await Promise.all(sockets.map((s) => roundTrip(s, Buffer.from('hello'), 1)));
      const errors = sockets.map((s) => new Promise<string>((resolve) => {
        s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
        s.once('close', () => resolve('closed without error'));
      }));
      assert.equal(p.resetAll(), 3);
      assert.deepEqual(await Promise.all(errors), ['ECONNRESET', 'ECONNRESET', 'ECONNRESET']);
      const s = p.stats();
      assert.equal(s.resets, 3);
      assert.equal(s.open, 0);
      assert.equal(s.connections, 3);
    } finally {
      await p.stop();
    }
  });

  test('dropAll closes connections without a reset and counts them', async () => {
    const { proxy: p, port } = await proxy();
    try {
      const socket = await open(port);
      await roundTrip(socket, Buffer.from('x'), 1);
      const ended = new Promise<string>((resolve) => {
        socket.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
        socket.once('end', () => resolve('end'));
      });
      assert.equal(p.dropAll(), 1);
      assert.equal(await ended, 'end');
      assert.equal(p.stats().drops, 1);
    } finally {
      await p.stop();
    }
  });

  test('a connection to a dead upstream is reset, and the proxy keeps serving', async () => {
    const dead = await echoServer();
    const deadPort = dead.port;
    await new Promise<void>((r) => dead.server.close(() => r()));
    const p = new FaultProxy({ host: HOST, port: 0 }, { host: HOST, port: deadPort });
    const port = await p.start();
    try {
      const socket = await open(port);
      const outcome = await new Promise<string>((resolve) => {
        socket.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
        socket.once('close', () => resolve('closed'));
      });
      assert.ok(outcome === 'ECONNRESET' || outcome === 'closed', outcome);
      assert.equal(p.stats().open, 0);
    } finally {
      await p.stop();
    }
  });
});
