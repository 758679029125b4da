/**
 * The stall watchdog's status probes, each worker's on a connection of its own that stays open
 * between probes (liveness-probe.ts says why: a probe that has to open a connection first loses
 * a second to one lost SYN). Its own connection (a local subchannel pool), so that a probe does
 * not queue behind the data path's bytes to the same worker. While that connection is not ready
 * (it broke: a reset, a dropped keepalive), each probe also goes out on a one-off connection of
 * its own, so that the probes of one verdict make independent handshakes: a lossy link that
 * loses one SYN (a 1 s retransmission) does not lose them all (chaos S6: after its `ss -K` of the
 * coordinator's connections to w1, w1 was called dead when the re-dial's SYN was lost). A worker
 * whose host refuses the connection (nothing listens: the process is gone) is told apart from one
 * that does not answer: packet loss can delay an answer, never make up a refusal.
 */
import * as grpc from '@grpc/grpc-js';
import type { ProbeOutcome } from './liveness-probe';
import { INSECURE, dialNode, type NodeSecurity } from '../common/security/node-security';
import { MAX_NODE_MESSAGE_BYTES, boraProto, type WorkerClient } from '../common/wire/proto';

const RECONNECT_BACKOFF_MS = 100;
const MAX_RECONNECT_BACKOFF_MS = 500;

export class ProbeChannels {
  private readonly clients = new Map<string, WorkerClient>();

  constructor(private readonly security: NodeSecurity = INSECURE) {}

  /** Whether the worker at `address` answered a Status call within `timeoutMs`, or refused the connection. Never rejects. */
  answers(address: string, timeoutMs: number): Promise<ProbeOutcome> {
    const kept = this.clientFor(address);
    // Asking for the state (true) also starts re-dialling a connection that broke.
    if (kept.getChannel().getConnectivityState(true) === grpc.connectivityState.READY) return ask(kept, timeoutMs);
    const oneOff = this.newClient(address);
    const both = [ask(kept, timeoutMs), ask(oneOff, timeoutMs)];
    void Promise.all(both).then(() => oneOff.close());
    // Answered as soon as either answers; otherwise what the two found.
    return new Promise((resolve) => {
      for (const outcome of both) void outcome.then((o) => o === 'answered' && resolve('answered'));
      void Promise.all(both).then((outcomes) => resolve(outcomes.includes('answered') ? 'answered' : outcomes.includes('refused') ? 'refused' : 'silent'));
    });
  }

  /** Closes the connections to addresses not in `keep` (workers that left or moved). */
  retain(keep: ReadonlySet<string>): void {
    for (const [address, client] of this.clients) {
      if (keep.has(address)) continue;
      client.close();
      this.clients.delete(address);
    }
  }

  close(): void {
    this.retain(new Set());
  }

  private clientFor(address: string): WorkerClient {
    let client = this.clients.get(address);
    if (client === undefined) {
      client = this.newClient(address);
      this.clients.set(address, client);
    }
    return client;
  }

  /** A client on a connection of its own. */
  private newClient(address: string): WorkerClient {
    const dial = dialNode(this.security, address);
    return new (boraProto().Worker)(address, dial.credentials, {
      'grpc.max_receive_message_length': MAX_NODE_MESSAGE_BYTES,
      'grpc.use_local_subchannel_pool': 1,
      'grpc.initial_reconnect_backoff_ms': RECONNECT_BACKOFF_MS,
      'grpc.max_reconnect_backoff_ms': MAX_RECONNECT_BACKOFF_MS,
      ...dial.options,
    });
  }
}

/** One Status call: answered, refused (nothing listens), or silent until the deadline. */
function ask(client: WorkerClient, timeoutMs: number): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    client.status({}, { deadline: Date.now() + timeoutMs }, (err) => {
      if (err === null) resolve('answered');
      else resolve(err.code === grpc.status.UNAVAILABLE && /ECONNREFUSED/.test(err.details) ? 'refused' : 'silent');
    });
  });
}
