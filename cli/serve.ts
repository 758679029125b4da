/** Helpers for the long-running subcommands: address flags and waiting for a stop signal. */
import { InvalidArgumentError } from '../common/errors';

export function parseHostPort(value: string, flag: string): { host: string; port: number } {
  const match = /^(.+):(\d{1,5})$/.exec(value);
  const port = match === null ? NaN : Number(match[2]);
  if (match === null || port > 65535) throw new InvalidArgumentError(`${flag} must be HOST:PORT, got "${value}"`);
  return { host: match[1], port };
}

/** Resolves on the first SIGTERM or SIGINT. */
export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const stop = (signal: NodeJS.Signals): void => {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      resolve(signal);
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}

/**
 * Keepalive pings on data streams go out this often (--keepalive-ms). Event loops stay free
 * (onnxruntime runs on its own thread), so pings are answered even under full load.
 */
export const DEFAULT_KEEPALIVE_MS = 500;
/**
 * ... and a ping not acknowledged within this long drops the connection. Longer than a few TCP
 * retransmission timeouts (200 ms, doubling) plus the data queued ahead of the ack, so that a
 * lossy link does not drop live connections (chaos S6); a blackholed or paused stage is found
 * sooner by the coordinator's stall watchdog (FAULTS.md S3: within 2 s).
 */
export const DEFAULT_KEEPALIVE_TIMEOUT_MS = 2000;
