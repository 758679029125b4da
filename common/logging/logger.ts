/**
 * The one logger every component is given: pino underneath, JSON lines with `level`, `time`,
 * `msg`, and on every line the node's id (`node`), its role (`role`) and the current plan epoch
 * (`epoch`, read at each line from the root's context, so a plan change shows up on every
 * component's next line without rebinding anything). Child loggers bind more fields, such as
 * the `requestId` of the request a line is about.
 *
 * A Logger is also callable, `log('message')` being `log.info('message')`: components that take a
 * plain `(message: string) => void` callback accept a Logger as they are.
 *
 * Writing never blocks the event loop: JSON goes through an asynchronous pino destination
 * (SonicBoom, `sync: false`), the human-readable mode through pino-pretty's stream; `flush()`
 * writes what is buffered, and the process's exit flushes synchronously.
 */
import { Writable } from 'node:stream';
import pino from 'pino';
import pinoPretty from 'pino-pretty';
import { InvalidArgumentError } from '../errors';

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const LOG_FORMATS = ['json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export type LogFields = Readonly<Record<string, unknown>>;

export interface Logger {
  /** The same as info(message). */
  (message: string): void;
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  /** A logger whose lines also carry `bindings` (a later binding of the same name wins). */
  child(bindings: LogFields): Logger;
  isLevelEnabled(level: LogLevel): boolean;
}

/** The process's logger: what a component is given, plus the plan epoch and flushing. */
export interface RootLogger extends Logger {
  /** The plan epoch every later line carries (0 until a plan is known). */
  setEpoch(epoch: number): void;
  /** Writes what is buffered; resolves once it is handed to the destination. */
  flush(): Promise<void>;
}

export type NodeRole = 'coordinator' | 'worker' | 'tool';

export interface LoggerOptions {
  /** The node's id: a worker's id, a coordinator's address. */
  readonly node: string;
  readonly role: NodeRole;
  /** Lines below this level are dropped; default 'info'. */
  readonly level?: LogLevel;
  /** 'json' (default): JSON lines; 'pretty': pino-pretty's coloured lines, for a terminal. */
  readonly format?: LogFormat;
  /** Where lines go: a file descriptor (default 2, stderr) or a stream (tests). */
  readonly destination?: number | NodeJS.WritableStream;
}

/**
 * One asynchronous destination per file descriptor, shared by every logger writing there (a
 * process may hold several nodes, as tests do); what is still buffered when the process exits
 * is written synchronously.
 */
const fdDestinations = new Map<number, pino.DestinationStream & { flushSync(): void }>();
function fdDestination(fd: number): pino.DestinationStream & { flushSync(): void } {
  let d = fdDestinations.get(fd);
  if (d === undefined) {
    const created = pino.destination({ dest: fd, sync: false });
    fdDestinations.set(fd, created);
    process.once('exit', () => {
      try {
        created.flushSync();
      } catch {
        // the descriptor is gone, or nothing was ever written
      }
    });
    d = created;
  }
  return d;
}

function wrap(p: pino.Logger): Logger {
  const log = ((message: string) => p.info(message)) as Logger;
  log.debug = (message, fields) => (fields === undefined ? p.debug(message) : p.debug(fields, message));
  log.info = (message, fields) => (fields === undefined ? p.info(message) : p.info(fields, message));
  log.warn = (message, fields) => (fields === undefined ? p.warn(message) : p.warn(fields, message));
  log.error = (message, fields) => (fields === undefined ? p.error(message) : p.error(fields, message));
  log.child = (bindings) => wrap(p.child(bindings));
  log.isLevelEnabled = (level) => p.isLevelEnabled(level);
  return log;
}

export function createLogger(options: LoggerOptions): RootLogger {
  const context = { epoch: 0 };
  const format = options.format ?? 'json';
  const fd = typeof options.destination === 'number' ? options.destination : 2;
  const stream = options.destination !== undefined && typeof options.destination !== 'number' ? options.destination : undefined;
  const sonic = stream === undefined && format === 'json' ? fdDestination(fd) : undefined;
  const destination =
    format === 'pretty'
      ? pinoPretty({ destination: stream ?? fd, colorize: stream === undefined && process.stderr.isTTY === true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' })
      : (stream ?? sonic!);
  const p = pino(
    {
      level: options.level ?? 'info',
      base: { node: options.node, role: options.role },
      // Read at every line: the epoch a component's line carries is the process's current one.
      mixin: () => ({ epoch: context.epoch }),
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination as pino.DestinationStream,
  );
  const root = wrap(p) as RootLogger;
  root.setEpoch = (epoch) => {
    context.epoch = epoch;
  };
  root.flush = () => new Promise<void>((resolve) => p.flush(() => resolve()));
  return root;
}

/** Lines to an in-memory array of parsed objects, for tests and tools. */
export function memoryLogger(options: Omit<LoggerOptions, 'destination' | 'format'>): { log: RootLogger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { log: createLogger({ ...options, destination: sink, format: 'json' }), lines };
}

/**
 * A logger that hands each line's message, level and fields (its bindings included) to
 * `onLine`, without pino: for tests that assert what a component reported, and for tools.
 */
export function callbackLogger(onLine: (message: string, level: LogLevel, fields: LogFields) => void, bindings: LogFields = {}): RootLogger {
  const line = (level: LogLevel) => (message: string, fields?: LogFields) => onLine(message, level, { ...bindings, ...fields });
  const log = ((message: string) => line('info')(message)) as RootLogger;
  log.debug = line('debug');
  log.info = line('info');
  log.warn = line('warn');
  log.error = line('error');
  log.child = (more) => callbackLogger(onLine, { ...bindings, ...more });
  log.isLevelEnabled = () => true;
  log.setEpoch = () => undefined;
  log.flush = () => Promise.resolve();
  return log;
}

/** A logger that drops everything. */
export function silentLogger(): RootLogger {
  return callbackLogger(() => undefined);
}

export function parseLogLevel(raw: string | undefined, flag = '--log-level'): LogLevel {
  if (raw === undefined) return 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(raw)) throw new InvalidArgumentError(`${flag} must be one of ${LOG_LEVELS.join(', ')}, got "${raw}"`);
  return raw as LogLevel;
}

/** --log-format: as given, else pretty when stderr is a terminal and JSON lines otherwise. */
export function parseLogFormat(raw: string | undefined, flag = '--log-format'): LogFormat {
  if (raw === undefined) return process.stderr.isTTY === true ? 'pretty' : 'json';
  if (!(LOG_FORMATS as readonly string[]).includes(raw)) throw new InvalidArgumentError(`${flag} must be json or pretty, got "${raw}"`);
  return raw as LogFormat;
}

/**
 * The logger a component gets when none is given: JSON lines on stderr at BORA_LOG_LEVEL (default
 * info). Nodes started from the command line are always given one (cli/log-flags.ts).
 */
export function defaultLogger(node: string, role: NodeRole): RootLogger {
  return createLogger({ node, role, level: parseLogLevel(process.env.BORA_LOG_LEVEL, 'BORA_LOG_LEVEL') });
}

let fallback: Logger | undefined;
/**
 * For a component constructed without a logger (tests, tools): one shared logger writing JSON
 * lines to stderr, its `node` the process id.
 */
export function fallbackLogger(): Logger {
  fallback ??= defaultLogger(`pid-${process.pid}`, 'tool');
  return fallback;
}
