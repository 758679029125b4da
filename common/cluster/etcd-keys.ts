/**
 * How Bora uses etcd, in one place: the key layout under a prefix, and the client settings that
 * every Bora process uses (deadlines, backoff, keepalive), each chosen deliberately because the
 * etcd3 defaults are unsafe for failure detection (see docs/FAULTS.md, "Pitfalls").
 *
 * Key layout under `<prefix>` (default "/bora"):
 *   members/<workerId>         MemberInfo JSON, on the worker's lease (presence = membership)
 *   plan                       current Plan JSON
 *   plan-epoch                 decimal epoch of `plan`; written with it in one transaction
 *   ready/<workerId>/<epoch>   empty value: the worker loaded its assignment for that epoch (on its lease)
 *   election/coordinator       name of the coordinator election (its keys live outside the prefix,
 *                              see electionKeysPrefix)
 *   coordinator, coordinator-health/<pid>   written by the coordinator (leadership.ts)
 *   models/versions/<name>@<version>        ModelVersionRecord JSON (common/models/), written by
 *                              `bora models add` (an admin) or the coordinator's admin API
 *   models/failures/<workerId>/<name>@<version>   VersionFailure JSON: the worker found a weight
 *                              digest that does not match the record (the version is failed)
 *
 * Every key a worker writes lies under a name of its own (members/<id> exactly, ready/<id>/ as a
 * prefix), so etcd's RBAC, whose permissions are a key or a key prefix, can confine each worker to
 * its own records (see common/security/etcd-rbac.ts). That is why a ready mark is keyed by worker
 * first and epoch second: `ready/<epoch>/` as a prefix would span every worker.
 */
import { Etcd3, type IOptions } from 'etcd3';
import { InvalidArgumentError } from '../errors';
import { type WorkerId, workerId } from '../ids';
import { isValidWorkerId } from './member';

export const DEFAULT_PREFIX = '/bora';

export class EtcdKeys {
  /** The prefix without a trailing slash, e.g. "/bora". */
  readonly prefix: string;

  constructor(prefix: string = DEFAULT_PREFIX) {
    const trimmed = prefix.replace(/\/+$/, '');
    if (trimmed.length === 0 || !trimmed.startsWith('/')) {
      throw new InvalidArgumentError(`etcd prefix must start with "/" and name something, got ${JSON.stringify(prefix)}`);
    }
    this.prefix = trimmed;
  }

  /** Prefix of every member key; ends with '/'. */
  membersPrefix(): string {
    return `${this.prefix}/members/`;
  }

  member(id: WorkerId): string {
    return `${this.membersPrefix()}${id}`;
  }

  /** The worker id in a member key, or undefined when the key is not one. */
  memberIdOf(key: string): WorkerId | undefined {
    return idAfter(key, this.membersPrefix());
  }

  plan(): string {
    return `${this.prefix}/plan`;
  }

  planEpoch(): string {
    return `${this.prefix}/plan-epoch`;
  }

  /** Prefix of every ready mark, all workers and epochs; ends with '/'. */
  readyPrefix(): string {
    return `${this.prefix}/ready/`;
  }

  /** Prefix of one worker's ready marks (its RBAC write permission); ends with '/'. */
  workerReadyPrefix(id: WorkerId): string {
    return `${this.readyPrefix()}${id}/`;
  }

  ready(epoch: number, id: WorkerId): string {
    return `${this.workerReadyPrefix(id)}${checkEpoch(epoch)}`;
  }

  /** The worker id in a ready key of `epoch`, or undefined when the key is not one. */
  readyIdOf(epoch: number, key: string): WorkerId | undefined {
    const suffix = `/${checkEpoch(epoch)}`;
    if (!key.startsWith(this.readyPrefix()) || !key.endsWith(suffix)) return undefined;
    const rest = key.slice(this.readyPrefix().length, key.length - suffix.length);
    return isValidWorkerId(rest) ? workerId(rest) : undefined;
  }

  /** The election's name, as given to etcd3's `client.election(name)`. */
  electionCoordinator(): string {
    return `${this.prefix}/election/coordinator`;
  }

  /**
   * Where the election's keys really are: etcd3's Election stores them under
   * `election/<name>/`, outside `<prefix>`, so this is what RBAC must grant.
   */
  electionKeysPrefix(): string {
    return `election/${this.electionCoordinator()}/`;
  }

  /** The leader's client address (leadership.ts writes it inline today). */
  coordinator(): string {
    return `${this.prefix}/coordinator`;
  }

  /** Prefix of every registered model version; ends with '/'. */
  modelVersionsPrefix(): string {
    return `${this.prefix}/models/versions/`;
  }

  /** A version's record; `ref` is NAME@VERSION (common/models/model-ref.ts). */
  modelVersion(ref: string): string {
    return `${this.modelVersionsPrefix()}${ref}`;
  }

  /** Prefix of every worker's version failure reports; ends with '/'. */
  modelFailuresPrefix(): string {
    return `${this.prefix}/models/failures/`;
  }

  /** Prefix of one worker's failure reports (its RBAC write permission); ends with '/'. */
  workerModelFailuresPrefix(id: WorkerId): string {
    return `${this.modelFailuresPrefix()}${id}/`;
  }

  modelFailure(id: WorkerId, ref: string): string {
    return `${this.workerModelFailuresPrefix(id)}${ref}`;
  }

  /** Prefix of the coordinators' health probes (leadership.ts writes them inline today); ends with '/'. */
  coordinatorHealthPrefix(): string {
    return `${this.prefix}/coordinator-health/`;
  }
}

/** A plan epoch: a positive integer. */
export function checkEpoch(epoch: number): number {
  if (!Number.isSafeInteger(epoch) || epoch <= 0) throw new InvalidArgumentError(`epoch must be a positive integer, got ${epoch}`);
  return epoch;
}

function idAfter(key: string, prefix: string): WorkerId | undefined {
  if (!key.startsWith(prefix)) return undefined;
  const rest = key.slice(prefix.length);
  return isValidWorkerId(rest) ? workerId(rest) : undefined;
}

/** Deadline of every unary etcd call (get, put, txn, lease grant/revoke); streams have none. */
export const DEFAULT_CALL_TIMEOUT_MS = 2_000;
/** etcd3's watch reconnect backoff defaults to growing up to 30 s; we cap it low. */
export const DEFAULT_WATCH_BACKOFF_INITIAL_MS = 100;
export const DEFAULT_WATCH_BACKOFF_MAX_MS = 2_000;
/**
 * HTTP/2 pings on the etcd connection, so a blackholed etcd breaks the watch and keepalive streams
 * instead of leaving them silent forever. etcd rejects pings more frequent than its
 * --grpc-keepalive-min-time (5 s by default) with GOAWAY, so stay above it.
 */
export const DEFAULT_GRPC_KEEPALIVE_TIME_MS = 10_000;
export const DEFAULT_GRPC_KEEPALIVE_TIMEOUT_MS = 5_000;
/** grpc-js reconnect backoff grows to 120 s by default, which delays recovery after an etcd restart. */
export const DEFAULT_GRPC_MAX_RECONNECT_BACKOFF_MS = 1_000;

export interface EtcdClientSettings {
  /** host:port or http://host:port, one or several. */
  readonly hosts: string | readonly string[];
  readonly callTimeoutMs?: number;
  readonly watchBackoffInitialMs?: number;
  readonly watchBackoffMaxMs?: number;
  readonly grpcKeepaliveTimeMs?: number;
  readonly grpcKeepaliveTimeoutMs?: number;
  readonly grpcMaxReconnectBackoffMs?: number;
}

type FaultHandling = NonNullable<IOptions['faultHandling']>;
type EtcdPolicy = NonNullable<FaultHandling['global']>;
type EtcdBackoff = NonNullable<FaultHandling['watchBackoff']>;

/**
 * Runs each call once. etcd3's defaults wrap calls in a 3-attempt retry and, per host, a circuit
 * breaker that after 3 failures rejects every call for 5 s: after an etcd restart that breaker
 * would keep a worker from re-registering for seconds, and a blind retry of a compare-and-swap
 * transaction whose first reply was lost reports failure for a write that succeeded. Callers
 * here retry deliberately, with their own deadlines.
 */
const SINGLE_ATTEMPT: EtcdPolicy = {
  _altReturn: undefined as never,
  onSuccess: () => ({ dispose: () => undefined }),
  onFailure: () => ({ dispose: () => undefined }),
  execute: async (fn, signal) => fn({ signal: signal ?? new AbortController().signal }),
};

/** Doubling backoff without jitter, capped; `next()` of the initial value yields `initialMs`. */
class CappedBackoff implements EtcdBackoff {
  constructor(
    readonly duration: number,
    private readonly initialMs: number,
    private readonly maxMs: number,
  ) {}

  next(): CappedBackoff {
    const nextMs = this.duration === 0 ? this.initialMs : Math.min(this.duration * 2, this.maxMs);
    return new CappedBackoff(nextMs, this.initialMs, this.maxMs);
  }
}

/**
 * Call options for one unary call: a deadline `timeoutMs` from now. Bora's modules pass it on
 * every call, so they keep their deadlines even with a client not made by createEtcdClient.
 */
export function callDeadline(timeoutMs: number = DEFAULT_CALL_TIMEOUT_MS): { deadline: number } {
  return { deadline: Date.now() + timeoutMs };
}

/** etcd3 options with every timeout and backoff set on purpose (see the constants above). */
export function etcdClientOptions(settings: EtcdClientSettings): IOptions {
  const callTimeoutMs = settings.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
  return {
    hosts: typeof settings.hosts === 'string' ? settings.hosts : [...settings.hosts],
    // A factory, so that each call gets a fresh deadline; streams (watch, lease keepalive) are
    // long-lived and must not get one.
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + callTimeoutMs }),
    grpcOptions: {
      'grpc.keepalive_time_ms': settings.grpcKeepaliveTimeMs ?? DEFAULT_GRPC_KEEPALIVE_TIME_MS,
      'grpc.keepalive_timeout_ms': settings.grpcKeepaliveTimeoutMs ?? DEFAULT_GRPC_KEEPALIVE_TIMEOUT_MS,
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': settings.grpcMaxReconnectBackoffMs ?? DEFAULT_GRPC_MAX_RECONNECT_BACKOFF_MS,
    },
    faultHandling: {
      host: () => SINGLE_ATTEMPT,
      global: SINGLE_ATTEMPT,
      watchBackoff: new CappedBackoff(
        0,
        settings.watchBackoffInitialMs ?? DEFAULT_WATCH_BACKOFF_INITIAL_MS,
        settings.watchBackoffMaxMs ?? DEFAULT_WATCH_BACKOFF_MAX_MS,
      ),
    },
  };
}

/** An etcd3 client configured by `etcdClientOptions`. Close it with `client.close()`. */
export function createEtcdClient(settings: EtcdClientSettings): Etcd3 {
  return new Etcd3(etcdClientOptions(settings));
}
