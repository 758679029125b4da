/**
 * bora worker: one worker node, until SIGTERM / SIGINT; then it asks the coordinator to drain it
 * (its layers and KV caches move to the other workers by hand-over, nothing is replayed) and
 * stops, within --drain-timeout-ms (default 60 s; a second signal stops at once).
 */
import { totalmem } from 'node:os';
import { InvalidArgumentError } from '../common/errors';
import { parseWorkerId } from '../common/cluster/member';
import { WorkerNode, placeableMemoryBytes, type WorkerNodeOptions } from '../worker/worker-node';
import { intFlag, parseFlags, requireString } from './args';
import { NODE_SECURITY_FLAGS, auditLogFromFlag, nodeSecurityFromFlags, warnIfInsecure } from './node-security-flags';
import { DEFAULT_KEEPALIVE_MS, DEFAULT_KEEPALIVE_TIMEOUT_MS, parseHostPort, untilSignal } from './serve';
import { LOG_FLAGS, logSettingsFromFlags, nodeLogger } from './log-flags';
import { DEFAULT_SEQUENCE_IDLE_MS } from '../worker/idle-sequences';

/** How long a stopping worker waits for the plan without it to serve. */
const DEFAULT_DRAIN_TIMEOUT_MS = 60_000;

const FLAGS = {
  etcd: { type: 'string' },
  listen: { type: 'string' },
  advertise: { type: 'string' },
  id: { type: 'string' },
  'models-dir': { type: 'string' },
  'memory-bytes': { type: 'string' },
  threads: { type: 'string' },
  'lease-ttl-ms': { type: 'string' },
  'sequence-idle-ms': { type: 'string' },
  'drain-timeout-ms': { type: 'string' },
  'prefix-cache-bytes': { type: 'string' },
  'metrics-port': { type: 'string' },
  'keepalive-ms': { type: 'string' },
  prefix: { type: 'string' },
  ...NODE_SECURITY_FLAGS,
  ...LOG_FLAGS,
} as const;

export async function workerCommand(argv: string[]): Promise<void> {
  const { values: v } = parseFlags(argv, FLAGS);
  const listen = parseHostPort(requireString(v.listen, '--listen'), '--listen');
  const advertise = v.advertise === undefined ? undefined : parseHostPort(v.advertise, '--advertise');
  if (advertise !== undefined && listen.port !== 0 && advertise.port !== listen.port) throw new InvalidArgumentError('--advertise must use the --listen port');
  const threads = intFlag(v.threads, '--threads', 1);
  const keepaliveMs = intFlag(v['keepalive-ms'], '--keepalive-ms', DEFAULT_KEEPALIVE_MS);
  const security = nodeSecurityFromFlags(v, 'worker');
  // With a certificate the worker is who the certificate says; --id may only repeat it.
  const certId = security.kind === 'tls' ? security.self.id : undefined;
  if (certId !== undefined && v.id !== undefined && v.id !== certId) throw new InvalidArgumentError(`--id ${v.id} does not match the certificate's worker/${certId}`);
  const options: WorkerNodeOptions = {
    id: parseWorkerId(v.id ?? certId ?? `w-${process.pid}`),
    etcdUrl: requireString(v.etcd, '--etcd'),
    listenHost: listen.host,
    listenPort: listen.port,
    advertiseHost: advertise?.host,
    modelsDir: v['models-dir'],
    memoryBytes: intFlag(v['memory-bytes'], '--memory-bytes', Math.floor(totalmem() * 0.8)),
    compute: { threads },
    leaseTtlMs: intFlag(v['lease-ttl-ms'], '--lease-ttl-ms', 3000),
    metricsPort: v['metrics-port'] === undefined ? undefined : intFlag(v['metrics-port'], '--metrics-port'),
    keysPrefix: v.prefix,
    keepaliveTimeMs: keepaliveMs,
    keepaliveTimeoutMs: Math.max(keepaliveMs, DEFAULT_KEEPALIVE_TIMEOUT_MS),
    security,
    prefixCacheBytes: intFlag(v['prefix-cache-bytes'], '--prefix-cache-bytes', 0, { min: 0, max: Number.MAX_SAFE_INTEGER }),
    sequenceIdleMs: intFlag(v['sequence-idle-ms'], '--sequence-idle-ms', DEFAULT_SEQUENCE_IDLE_MS, { min: 1_000, max: 86_400_000 }),
  };
  const drainTimeoutMs = intFlag(v['drain-timeout-ms'], '--drain-timeout-ms', DEFAULT_DRAIN_TIMEOUT_MS, { min: 0, max: 3_600_000 });
  placeableMemoryBytes(options.memoryBytes, options.prefixCacheBytes ?? 0);
  const logSettings = logSettingsFromFlags(v);
  // BORA_CHECK_ARGS=1: validate the command line and stop (deployment files are tested this way).
  if (process.env.BORA_CHECK_ARGS === '1') return;
  const log = nodeLogger(logSettings, options.id, 'worker');
  warnIfInsecure(security, `worker ${options.id}`, log);
  const audit = auditLogFromFlag(v['audit-log']);
  const node = new WorkerNode({ ...options, audit, log });
  await node.start();
  await untilSignal();
  // SIGTERM / SIGINT: a graceful stop (drained by hand-over, then stopped); a second signal
  // during the drain stops at once. --drain-timeout-ms 0 skips the drain.
  if (drainTimeoutMs > 0) await Promise.race([node.drainAndStop(drainTimeoutMs), untilSignal().then(() => node.stop())]);
  await node.stop();
  await audit?.close();
  await log.flush();
}
