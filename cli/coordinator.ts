/** bora coordinator: placement, plans and the client API, until SIGTERM / SIGINT (then a graceful stop: coordinator/graceful-stop.ts). */
import { basename, resolve } from 'node:path';
import { InvalidArgumentError } from '../common/errors';
import { parseModelRef } from '../common/models/model-ref';
import { DEFAULT_MAX_PROMPT_BYTES, MAX_PROMPT_BYTES_CEILING } from '../common/generation/prompt-limits';
import { CoordinatorNode, type CoordinatorOptions } from '../coordinator/coordinator-node';
import { DEFAULT_EXPERT_REBALANCE_MS } from '../coordinator/expert-rebalancer';
import { DEFAULT_COORDINATOR_DRAIN_TIMEOUT_MS } from '../coordinator/graceful-stop';
import { parseMicroBatches } from '../coordinator/pipeline-depth';
import { loadApiKeyStore } from '../common/security/api-keys-file';
import { ADMISSION_FLAGS, admissionFromFlags } from './admission-flags';
import { intFlag, parseFlags, requireString } from './args';
import { SAFETY_FLAGS, safetyFromFlags } from './safety-flags';
import { NODE_SECURITY_FLAGS, auditLogFromFlag, nodeSecurityFromFlags, warnIfInsecure } from './node-security-flags';
import { DEFAULT_KEEPALIVE_MS, DEFAULT_KEEPALIVE_TIMEOUT_MS, parseHostPort, untilSignal } from './serve';
import { LOG_FLAGS, logSettingsFromFlags, nodeLogger } from './log-flags';

const FLAGS = {
  etcd: { type: 'string' },
  listen: { type: 'string' },
  advertise: { type: 'string' },
  model: { type: 'string' },
  'model-id': { type: 'string' },
  'model-version': { type: 'string' },
  placement: { type: 'string' },
  replicas: { type: 'string' },
  'lease-ttl-ms': { type: 'string' },
  'metrics-port': { type: 'string' },
  'step-timeout-ms': { type: 'string' },
  'ready-timeout-ms': { type: 'string' },
  'keepalive-ms': { type: 'string' },
  prefix: { type: 'string' },
  'max-batch-tokens': { type: 'string' },
  'max-batch-sequences': { type: 'string' },
  'expert-rebalance-ms': { type: 'string' },
  'micro-batches': { type: 'string' },
  'max-prompt-bytes': { type: 'string' },
  'api-keys': { type: 'string' },
  'http-listen': { type: 'string' },
  'drain-timeout-ms': { type: 'string' },
  ...ADMISSION_FLAGS,
  ...NODE_SECURITY_FLAGS,
  ...SAFETY_FLAGS,
  ...LOG_FLAGS,
} as const;

/** After a stop, how long the process may take to end by itself before it exits anyway. */
const EXIT_GRACE_MS = 1000;

export async function coordinatorCommand(argv: string[]): Promise<void> {
  const { values: v } = parseFlags(argv, FLAGS);
  const listen = parseHostPort(requireString(v.listen, '--listen'), '--listen');
  const advertise = v.advertise === undefined ? undefined : parseHostPort(v.advertise, '--advertise');
  const placement = v.placement ?? 'layers';
  if (placement !== 'layers' && placement !== 'experts') throw new InvalidArgumentError(`--placement must be layers or experts, got "${placement}"`);
  const modelDir = resolve(requireString(v.model, '--model'));
  const keepaliveMs = intFlag(v['keepalive-ms'], '--keepalive-ms', DEFAULT_KEEPALIVE_MS);
  const replicas = intFlag(v.replicas, '--replicas', 1);
  if (replicas !== 1 && replicas !== 2) throw new InvalidArgumentError(`--replicas must be 1 or 2, got ${replicas}`);
  // With --placement experts: how often routing counts are collected to place hot experts; 0: never.
  const expertRebalanceIntervalMs = intFlag(v['expert-rebalance-ms'], '--expert-rebalance-ms', DEFAULT_EXPERT_REBALANCE_MS);
  if (expertRebalanceIntervalMs < 0) throw new InvalidArgumentError(`--expert-rebalance-ms must be 0 or more, got ${expertRebalanceIntervalMs}`);
  const options: CoordinatorOptions = {
    etcdUrl: requireString(v.etcd, '--etcd'),
    listenHost: listen.host,
    listenPort: listen.port,
    advertiseHost: advertise?.host,
    modelDir,
    modelId: v['model-id'] ?? basename(modelDir),
    // The registered version --model holds (bora models add): workers verify its digests.
    ...(v['model-version'] === undefined ? {} : { modelVersion: parseModelRef(v['model-version']) }),
    expertsMode: placement === 'experts' ? 'spread' : 'local',
    replicas,
    leaseTtlMs: intFlag(v['lease-ttl-ms'], '--lease-ttl-ms', 3000),
    metricsPort: v['metrics-port'] === undefined ? undefined : intFlag(v['metrics-port'], '--metrics-port'),
    keysPrefix: v.prefix,
    stepTimeoutMs: intFlag(v['step-timeout-ms'], '--step-timeout-ms', 30_000),
    readyTimeoutMs: intFlag(v['ready-timeout-ms'], '--ready-timeout-ms', 300_000),
    replanDebounceMs: 200,
    keepaliveTimeMs: keepaliveMs,
    keepaliveTimeoutMs: Math.max(keepaliveMs, DEFAULT_KEEPALIVE_TIMEOUT_MS),
    maxBatchTokens: intFlag(v['max-batch-tokens'], '--max-batch-tokens', 512),
    maxBatchSequences: intFlag(v['max-batch-sequences'], '--max-batch-sequences', 32),
    expertRebalanceIntervalMs,
    microBatches: parseMicroBatches(v['micro-batches']),
    // Prompt text over this many UTF-8 bytes is refused before it is tokenized.
    maxPromptBytes: intFlag(v['max-prompt-bytes'], '--max-prompt-bytes', DEFAULT_MAX_PROMPT_BYTES, { min: 1, max: MAX_PROMPT_BYTES_CEILING }),
    security: nodeSecurityFromFlags(v, 'coordinator'),
    // The OpenAI-compatible HTTP API (HTTPS with the coordinator's certificate when secure).
    ...(v['http-listen'] === undefined ? {} : { httpListen: parseHostPort(v['http-listen'], '--http-listen') }),
    // With API keys, every key is held to the admission limits; without, the API is open.
    ...(v['api-keys'] === undefined ? {} : { apiKeys: loadApiKeyStore(resolve(v['api-keys'])), admission: admissionFromFlags(v) }),
    // The safety filter (--safety-policy, --safety-url ...): a bad policy file stops the start here.
    safety: safetyFromFlags(v),
    // SIGTERM on the leader: how long the requests it runs get to finish before they are handed
    // to the next leader (graceful-stop.ts).
    drainTimeoutMs: intFlag(v['drain-timeout-ms'], '--drain-timeout-ms', DEFAULT_COORDINATOR_DRAIN_TIMEOUT_MS),
  };
  const logSettings = logSettingsFromFlags(v);
  // BORA_CHECK_ARGS=1: validate the command line and stop (deployment files are tested this way).
  if (process.env.BORA_CHECK_ARGS === '1') return;
  // The node's id in its log lines: the address it is reached at.
  const log = nodeLogger(logSettings, `${advertise?.host ?? listen.host}:${listen.port}`, 'coordinator');
  if (options.apiKeys === undefined) log.warn('bora coordinator: WARNING: no --api-keys: the client API is open to anyone who can reach it (development only)');
  warnIfInsecure(options.security!, 'the coordinator', log);
  const audit = auditLogFromFlag(v['audit-log']);
  const node = new CoordinatorNode({ ...options, audit, log });
  await node.start();
  // The first SIGTERM / SIGINT stops gracefully; a second one ends the process at once.
  await untilSignal();
  await node.gracefulStop();
  await audit?.close();
  await log.flush();
  // Everything is closed, but an etcd3 connection can outlive Etcd3.close() (a socket to etcd
  // stayed open after stop(), and the process with it, until `bora down` killed it): exit once
  // the rest has had a moment to flush. Unreferenced, the timer never delays a clean exit.
  setTimeout(() => process.exit(process.exitCode ?? 0), EXIT_GRACE_MS).unref();
}
