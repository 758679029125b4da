/**
 * The HTTP/2 flow-control window of Bora's gRPC connections, on both ends.
 *
 * HTTP/2 lets a sender have at most one window of unacknowledged bytes in flight per stream and
 * per connection, so one stream moves at most a window per round trip. Node's default is 64 KiB:
 * at 100 ms one-way delay that is ~0.3 MB/s, whatever the link's bandwidth, and a last stage's
 * logits (16 sequences x 32000 x 4 B = 2 MiB per decode step) take seconds per step (chaos S5).
 * FLOW_CONTROL_WINDOW_BYTES (16 MiB) covers a 2 MiB step at any round trip up to ~1 s, and the
 * 8 MiB RunExperts requests, in one window.
 *
 * grpc-js (1.14) applies `grpc-node.flow_control_window` on client channels only (per-stream
 * SETTINGS and the connection's window). A server keeps 64 KiB, which is what limits everything a
 * node receives on a stream it serves: Forward frames into a stage, RunExperts requests. So
 * bindServer (bind-server.ts) calls widenServerWindows: each HTTP/2 session the server accepts
 * advertises the server's own `grpc-node.flow_control_window` option as its streams' initial
 * window and widens its connection window to match. grpc-js gives no handle on its HTTP/2 servers,
 * so this goes through its internals (`http2Servers`); test/unit/wire/flow-control.test.ts pins
 * that it works for the installed version.
 *
 * What the window costs: a receiver that stops reading lets a sender put up to one window per
 * connection into its buffers before flow control stops it (the connection window bounds every
 * stream on it together). It does not unbound a sender: the bounded writers (bounded-writer.ts)
 * count what is written and not yet handed to HTTP/2, which stops growing once the window is full.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Http2Session } from 'node:http2';

/** Every Bora channel's and server's flow-control window (stream and connection). */
export const FLOW_CONTROL_WINDOW_BYTES = 16 * 1024 * 1024;

/** What widenServerWindows reads of a grpc-js Server (private fields in grpc-js 1.14). */
interface ServerInternals {
  readonly options?: Record<string, unknown>;
  readonly http2Servers?: Map<{ prependListener(event: 'session', listener: (session: Http2Session) => void): unknown }, unknown>;
}

/**
 * Gives every session `server` accepts from now on the window named by its
 * `grpc-node.flow_control_window` option (none: nothing changes). Call it once, after binding.
 * Returns how many HTTP/2 servers (listening sockets) it was applied to.
 */
export function widenServerWindows(server: grpc.Server): number {
  const internals = server as unknown as ServerInternals;
  const windowBytes = internals.options?.['grpc-node.flow_control_window'];
  if (typeof windowBytes !== 'number' || internals.http2Servers === undefined) return 0;
  for (const http2Server of internals.http2Servers.keys()) {
    http2Server.prependListener('session', (session) => widenSession(session, windowBytes));
  }
  return internals.http2Servers.size;
}

function widenSession(session: Http2Session, windowBytes: number): void {
  try {
    // Streams the peer opens from now on start with this window (SETTINGS_INITIAL_WINDOW_SIZE);
    // the connection's own window is raised with a WINDOW_UPDATE.
    session.settings({ initialWindowSize: windowBytes });
    session.setLocalWindowSize(windowBytes);
  } catch {
    // A session that closed at once: nothing to widen.
  }
}
