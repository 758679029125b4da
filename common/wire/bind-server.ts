/**
 * Binds a gRPC server to an address (port 0 picks a free port) and closes it gracefully.
 * `credentials` come from the node's transport security (common/security/node-security.ts);
 * plaintext only when none are given (tests, --insecure). Sessions get the server's
 * `grpc-node.flow_control_window` (flow-control.ts), which grpc-js applies to channels only.
 */
import * as grpc from '@grpc/grpc-js';
import { widenServerWindows } from './flow-control';

export interface BoundServer {
  readonly server: grpc.Server;
  readonly port: number;
  /** host:port that peers dial. */
  readonly address: string;
  /** Refuses new calls and waits up to `graceMs` (default 1 s) for running ones, then cuts them. */
  close(graceMs?: number): Promise<void>;
}

export async function bindServer(server: grpc.Server, host: string, port: number, credentials: grpc.ServerCredentials = grpc.ServerCredentials.createInsecure()): Promise<BoundServer> {
  const bound = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${host}:${port}`, credentials, (err, actual) => (err ? reject(err) : resolve(actual)));
  });
  widenServerWindows(server);
  return {
    server,
    port: bound,
    address: `${host}:${bound}`,
    close: (graceMs = 1000) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
  };
}
