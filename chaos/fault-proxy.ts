/**
 * A user-space TCP fault proxy: the harness puts one in front of a node's port (etcd's, a
 * coordinator's, a worker's) so that every connection to that node crosses it, and faults the
 * byte streams there. It is what stands in for netem where the kernel has no sch_netem.
 *
 * What a TCP-level proxy can emulate, and how:
 * - delay and jitter: each chunk read from one side is written to the other `delayMs +/- jitterMs`
 *   later (uniform), per direction. Chunks never overtake each other (a chunk leaves no earlier
 *   than the one before it): a TCP stream is ordered, so jitter shows up as variable delay, as it
 *   does to an application behind netem's jitter after the kernel reorders segments back.
 * - a reset: resetAll() aborts every connection with a TCP RST on both sides (the client sees
 *   ECONNRESET), as `ss -K` does.
 * - a dropped connection: dropAll() stops forwarding and closes both sides without a RST.
 *
 * What it cannot emulate: packet loss, duplication or reordering inside a connection. TCP hides
 * them from the application (a lost segment is retransmitted: the application sees delay; a
 * duplicate is discarded; out-of-order segments are reassembled), and a proxy that dropped,
 * duplicated or reordered bytes would corrupt the stream rather than emulate the network. So
 * there is no reordering of gRPC frames within one HTTP/2 connection either. Those faults are made
 * on real packets in the kernel instead (packet-faults.ts), where TCP has to repair them.
 *
 * Every fault it applies is counted (stats()), so a scenario can prove that its fault was in
 * effect: chunks delayed, the smallest and largest delay applied, resets and drops.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface ProxyFaults {
  /** Mean one-way delay added to each chunk, each direction. */
  readonly delayMs: number;
  /** Uniform jitter: each chunk's delay is in [delayMs - jitterMs, delayMs + jitterMs]. */
  readonly jitterMs: number;
}

export const NO_FAULTS: ProxyFaults = { delayMs: 0, jitterMs: 0 };

export interface ProxyStats {
  readonly connections: number;
  readonly open: number;
  readonly bytesForwarded: number;
  /** Chunks written with a delay > 0. */
  readonly chunksDelayed: number;
  /** Smallest / largest delay drawn for a chunk (ms); null before any chunk was delayed. */
  readonly minDelayMs: number | null;
  readonly maxDelayMs: number | null;
  readonly resets: number;
  readonly drops: number;
  /**
   * Largest lateness of a delayed chunk: how long after its due time it was written. The proxy
   * runs on the harness's event loop; a starved loop would add delay beyond the fault's, and this
   * says by how much.
   */
  readonly maxLateMs: number;
}

/** A random source in [0, 1) (seeded in the harness, so schedules repeat). */
export type Random = () => number;

interface Pair {
  readonly client: Socket;
  readonly upstream: Socket;
}

/** A delay in [delay - jitter, delay + jitter], never negative. */
export function drawDelayMs(faults: ProxyFaults, random: Random): number {
  if (faults.delayMs <= 0 && faults.jitterMs <= 0) return 0;
  return Math.max(0, faults.delayMs + (2 * random() - 1) * faults.jitterMs);
}

/**
 * One direction of a connection: chunks wait in one FIFO queue, each until max(its arrival + its
 * delay, the release of the chunk before it), and a single timer releases the head (separate
 * timers per chunk could fire out of order). Backpressure: the reader is paused while the writer
 * is full.
 */
class DelayedPipe {
  private readonly queue: { readonly chunk: Buffer; readonly releaseMs: number }[] = [];
  private lastReleaseMs = 0;
  private timer: NodeJS.Timeout | undefined;
  private ended = false;
  private waitingForDrain = false;

  constructor(
    private readonly from: Socket,
    private readonly to: Socket,
    private readonly proxy: FaultProxy,
  ) {
    from.on('data', (chunk: Buffer) => this.onData(chunk));
    from.on('end', () => {
      this.ended = true;
      this.flush();
    });
    to.on('close', () => this.clear());
    from.on('close', () => {
      if (this.to.destroyed) this.clear();
    });
  }

  private onData(chunk: Buffer): void {
    const nowMs = performance.now();
    const releaseMs = Math.max(nowMs + this.proxy.delayFor(), this.lastReleaseMs);
    this.lastReleaseMs = releaseMs;
    this.queue.push({ chunk, releaseMs });
    this.flush();
  }

  /** Writes every chunk that is due, in order; arms the timer for the next one. */
  private flush(): void {
    const nowMs = performance.now();
    while (this.queue.length > 0 && this.queue[0].releaseMs <= nowMs) {
      const { chunk, releaseMs } = this.queue.shift()!;
      this.proxy.countLateness(nowMs - releaseMs);
      this.write(chunk);
    }
    if (this.queue.length > 0) {
      if (this.timer === undefined) {
        this.timer = setTimeout(() => {
          this.timer = undefined;
          this.flush();
        }, Math.max(1, Math.ceil(this.queue[0].releaseMs - nowMs)));
      }
      return;
    }
    if (this.ended && !this.to.destroyed) this.to.end();
  }

  private clear(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.queue.length = 0;
  }

  private write(chunk: Buffer): void {
    if (this.to.destroyed) return;
    this.proxy.countBytes(chunk.length);
    if (!this.to.write(chunk) && !this.waitingForDrain) {
      this.waitingForDrain = true;
      this.from.pause();
      this.to.once('drain', () => {
        this.waitingForDrain = false;
        this.from.resume();
      });
    }
  }
}

export class FaultProxy {
  private server: Server | undefined;
  private readonly pairs = new Set<Pair>();
  /** Every socket still open on either side, whether or not its pair still forwards. */
  private readonly sockets = new Set<Socket>();
  private faults: ProxyFaults = NO_FAULTS;
  private counters = { connections: 0, bytesForwarded: 0, chunksDelayed: 0, minDelayMs: Infinity, maxDelayMs: -Infinity, resets: 0, drops: 0, maxLateMs: 0 };

  /**
   * @param listen where the proxy listens (host, port)
   * @param target where it forwards every connection
   */
  constructor(
    readonly listen: { readonly host: string; readonly port: number },
    readonly target: { readonly host: string; readonly port: number },
    private readonly random: Random = Math.random,
  ) {}

  /** Starts listening; resolves with the bound port (useful with port 0). */
  async start(): Promise<number> {
    const server = createServer({ pauseOnConnect: true }, (client) => this.accept(client));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.listen.port, this.listen.host, () => resolve());
    });
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('the fault proxy has no TCP address');
    return address.port;
  }

  setFaults(faults: ProxyFaults): void {
    if (faults.delayMs < 0 || faults.jitterMs < 0 || faults.jitterMs > faults.delayMs) throw new Error(`invalid proxy faults ${JSON.stringify(faults)}: need 0 <= jitter <= delay`);
    this.faults = faults;
  }

  get currentFaults(): ProxyFaults {
    return this.faults;
  }

  /** A delay for the next chunk (counted when > 0). */
  delayFor(): number {
    const d = drawDelayMs(this.faults, this.random);
    if (d > 0) {
      this.counters.chunksDelayed += 1;
      this.counters.minDelayMs = Math.min(this.counters.minDelayMs, d);
      this.counters.maxDelayMs = Math.max(this.counters.maxDelayMs, d);
    }
    return d;
  }

  countLateness(ms: number): void {
    if (ms > this.counters.maxLateMs) this.counters.maxLateMs = ms;
  }

  countBytes(n: number): void {
    this.counters.bytesForwarded += n;
  }

  /** Aborts every open connection with a RST on both sides; returns how many. */
  resetAll(): number {
    const n = this.pairs.size;
    for (const pair of [...this.pairs]) {
      pair.client.resetAndDestroy();
      pair.upstream.resetAndDestroy();
      this.pairs.delete(pair);
    }
    this.counters.resets += n;
    return n;
  }

  /** Closes every open connection (FIN, no RST) without forwarding what is pending; returns how many. */
  dropAll(): number {
    const n = this.pairs.size;
    for (const pair of [...this.pairs]) {
      pair.client.destroy();
      pair.upstream.destroy();
      this.pairs.delete(pair);
    }
    this.counters.drops += n;
    return n;
  }

  stats(): ProxyStats {
    const c = this.counters;
    return {
      connections: c.connections,
      open: this.pairs.size,
      bytesForwarded: c.bytesForwarded,
      chunksDelayed: c.chunksDelayed,
      minDelayMs: c.chunksDelayed === 0 ? null : c.minDelayMs,
      maxDelayMs: c.chunksDelayed === 0 ? null : c.maxDelayMs,
      resets: c.resets,
      drops: c.drops,
      maxLateMs: c.maxLateMs,
    };
  }

  /** Closes the listener and destroys every socket it still has (so nothing keeps the process alive). */
  async stop(): Promise<void> {
    this.pairs.clear();
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    const server = this.server;
    this.server = undefined;
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    this.counters.connections += 1;
    const upstream = connect({ host: this.target.host, port: this.target.port });
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    }
    const pair: Pair = { client, upstream };
    this.pairs.add(pair);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    const close = (): void => {
      if (!this.pairs.delete(pair)) return;
      // One side failed: the other sees a reset too, as it would through a real network path.
      if (!client.destroyed) client.resetAndDestroy();
      if (!upstream.destroyed) upstream.resetAndDestroy();
    };
    client.on('error', close);
    upstream.on('error', close);
    client.on('close', () => {
      if (!upstream.destroyed && upstream.writableEnded) upstream.destroy();
      this.pairs.delete(pair);
    });
    upstream.on('close', () => {
      if (!client.destroyed && client.writableEnded) client.destroy();
      this.pairs.delete(pair);
    });
    upstream.once('connect', () => {
      new DelayedPipe(client, upstream, this);
      new DelayedPipe(upstream, client, this);
      client.resume();
    });
  }
}
