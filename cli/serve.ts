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
 * Keepalive on data streams, both interval and timeout: a blackholed or paused peer is noticed
 * within about twice this (FAULTS.md S3 asks for detection within 2 s). Event loops stay free
 * (onnxruntime runs on its own thread), so pings are answered even under full load.
 */
export const DEFAULT_KEEPALIVE_MS = 500;
