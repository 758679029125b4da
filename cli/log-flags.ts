/**
 * --log-format json|pretty and --log-level debug|info|warn|error, shared by `bora coordinator`,
 * `bora worker` and `bora up` (which passes them on to every node it starts). A node writes its
 * lines to stderr: JSON lines by default when stderr is not a terminal (a log file, a container
 * runtime), pino-pretty's coloured lines on a terminal.
 */
import { type LogFormat, type LogLevel, type NodeRole, type RootLogger, createLogger, parseLogFormat, parseLogLevel } from '../common/logging/logger';

export const LOG_FLAGS = {
  'log-format': { type: 'string' },
  'log-level': { type: 'string' },
} as const;

export interface LogSettings {
  readonly format: LogFormat;
  readonly level: LogLevel;
}

/** The flags, checked; missing ones get their defaults. */
export function logSettingsFromFlags(v: { readonly 'log-format'?: string; readonly 'log-level'?: string }): LogSettings {
  return { format: parseLogFormat(v['log-format']), level: parseLogLevel(v['log-level']) };
}

/** A node's process logger on stderr. */
export function nodeLogger(settings: LogSettings, node: string, role: NodeRole): RootLogger {
  return createLogger({ node, role, level: settings.level, format: settings.format });
}

/** The flags as `bora up` passes them to a node it starts (its log file is JSON lines unless told otherwise). */
export function logArgs(v: { readonly 'log-format'?: string; readonly 'log-level'?: string }): string[] {
  return ['--log-format', v['log-format'] ?? 'json', ...(v['log-level'] === undefined ? [] : ['--log-level', v['log-level']])];
}
