/**
 * A worker's membership in etcd: a lease, its `members/<id>` record on that lease, keepalives,
 * and self-fencing.
 *
 * Self-fencing: etcd revokes a lease TTL after the last keepalive it processed, and the etcd3
 * client may report the loss up to ~2 x TTL later. So the worker keeps its own deadline:
 * serving is allowed only while now < (send time of the last acknowledged keepalive) + TTL -
 * margin. The send time, not the ack time, is used because etcd may have processed the request
 * any time after it was sent. A timer fires 'fenced' when that deadline passes; `isServing()`
 * re-reads the clock, so it is exact even if the timer is late.
 *
 * After a lost lease (etcd3's Lease object is dead then, and 'lost' may fire more than once) it
 * grants a NEW lease and re-puts its records, retrying with backoff until etcd answers.
 *
 * States: idle -> registering -> registered -> retrying -> registering ...; any -> closed.
 */
import { EventEmitter } from 'node:events';
import { type Etcd3, EtcdLeaseInvalidError, type Lease } from 'etcd3';
import { DEFAULT_CALL_TIMEOUT_MS, type EtcdKeys, callDeadline } from '../common/cluster/etcd-keys';
import { type MemberInfo, type MemberLoad, encodeMember } from '../common/cluster/member';
import { BoraError, FailedPreconditionError, InvalidArgumentError, UnavailableError } from '../common/errors';
import { type Logger, fallbackLogger } from '../common/logging/logger';

/** Time source and timers, injectable so the fencing cadence can be tested with a fake clock. */
export interface Clock {
  /** Monotonic milliseconds; only differences are meaningful. */
  nowMs(): number;
  setTimer(callback: () => void, delayMs: number): { cancel(): void };
}

export const systemClock: Clock = {
  nowMs: () => performance.now(),
  setTimer: (callback, delayMs) => {
    const handle = setTimeout(callback, delayMs);
    return { cancel: () => clearTimeout(handle) };
  },
};

export const DEFAULT_LEASE_TTL_MS = 3_000;
export const DEFAULT_FENCE_MARGIN_MS = 500;
export const DEFAULT_RETRY_INITIAL_MS = 250;
export const DEFAULT_RETRY_MAX_MS = 2_000;

export interface RegistrationOptions {
  readonly client: Etcd3;
  readonly keys: EtcdKeys;
  readonly member: MemberInfo;
  /** Lease TTL; whole seconds, as etcd counts them. etcd raises anything below its minimum
   * (2 s with default election settings) without telling us; fencing uses this value, which is
   * then the conservative one. */
  readonly ttlMs?: number;
  /** Stop serving this long before etcd could have expired the lease. */
  readonly marginMs?: number;
  readonly retryInitialMs?: number;
  readonly retryMaxMs?: number;
  /** Deadline of each unary etcd call (grant, put, delete, revoke). */
  readonly callTimeoutMs?: number;
  readonly clock?: Clock;
  readonly log?: Logger;
}

export type RegistrationState = 'idle' | 'registering' | 'registered' | 'retrying' | 'closed';

export interface RegistrationEvents {
  /** A lease was granted and the records are on it (first time and after each loss). */
  registered: [leaseId: string];
  /** Serving is allowed again (after registering, or after a late keepalive ack). */
  serving: [];
  /** Serving must stop: the deadline passed without a renewal, or the lease was lost. */
  fenced: [reason: string];
}

const TRACE = (process.env.BORA_TRACE ?? '').split(',').includes('registration');

export class Registration extends EventEmitter<RegistrationEvents> {
  private readonly ttlMs: number;
  private readonly marginMs: number;
  private readonly clock: Clock;
  private readonly log: Logger;
  private state: RegistrationState = 'idle';
  private member: MemberInfo;
  private readyEpoch: number | undefined;
  private lease: Lease | undefined;
  private leaseId: string | undefined;
  /** Leases lost or abandoned, revoked (best effort) after the next successful registration. */
  private readonly staleLeases: Lease[] = [];
  /** Clock times of keepalives sent on the current stream and not yet acknowledged, oldest first. */
  private unackedSendsMs: number[] = [];
  private deadlineMs = -Infinity;
  private announcedServing = false;
  private fenceTimer: { cancel(): void } | undefined;
  private retryTimer: { cancel(): void } | undefined;
  private retryDelayMs: number;
  private firstRegistration: { resolve: () => void; reject: (err: Error) => void } | undefined;

  constructor(private readonly options: RegistrationOptions) {
    super();
    this.ttlMs = options.ttlMs ?? DEFAULT_LEASE_TTL_MS;
    this.marginMs = options.marginMs ?? DEFAULT_FENCE_MARGIN_MS;
    if (!Number.isInteger(this.ttlMs / 1000) || this.ttlMs < 1000) {
      throw new InvalidArgumentError(`ttlMs must be a whole number of seconds >= 1000, got ${this.ttlMs}`);
    }
    if (!(this.marginMs >= 0 && this.marginMs < this.ttlMs)) {
      throw new InvalidArgumentError(`marginMs must be in [0, ttlMs), got ${this.marginMs}`);
    }
    this.clock = options.clock ?? systemClock;
    this.log = options.log ?? fallbackLogger();
    encodeMember(options.member); // validates: a record others would reject is an error now, not a retry loop
    this.member = options.member;
    this.retryDelayMs = options.retryInitialMs ?? DEFAULT_RETRY_INITIAL_MS;
  }

  /** Resolves after the first registration (retrying until etcd answers); rejects if closed first. */
  start(): Promise<void> {
    if (this.state !== 'idle') return Promise.reject(new FailedPreconditionError(`registration already ${this.state}`));
    const registered = new Promise<void>((resolve, reject) => {
      this.firstRegistration = { resolve, reject };
    });
    void this.register();
    return registered;
  }

  /** True while this worker may serve: registered, and before the self-fencing deadline. */
  isServing(): boolean {
    return this.state === 'registered' && this.clock.nowMs() < this.deadlineMs;
  }

  /** The clock time at which serving stops unless a keepalive is acknowledged first. */
  servingDeadlineMs(): number {
    return this.deadlineMs;
  }

  currentState(): RegistrationState {
    return this.state;
  }

  /** Publishes the new load in the member record (or keeps it for the next registration). */
  async updateLoad(load: MemberLoad): Promise<void> {
    const member = { ...this.member, load: { activeSequences: load.activeSequences, queueDepth: load.queueDepth } };
    const record = encodeMember(member); // throws InvalidArgumentError before anything changes
    this.member = member;
    const { lease, leaseId } = this;
    if (this.state !== 'registered' || lease === undefined || leaseId === undefined) return;
    await this.call('updating the member record', this.putOnLease(lease, leaseId, this.options.keys.member(member.id), record));
  }

  /** Reports that this worker loaded its assignment for `epoch`; re-put after a re-registration. */
  async markReady(epoch: number): Promise<void> {
    const keys = this.options.keys;
    const readyKey = keys.ready(epoch, this.member.id); // validates the epoch
    const previous = this.readyEpoch;
    this.readyEpoch = epoch;
    const { lease, leaseId } = this;
    if (this.state !== 'registered' || lease === undefined || leaseId === undefined) return;
    await this.call(`marking epoch ${epoch} ready`, this.putOnLease(lease, leaseId, readyKey, ''));
    if (previous !== undefined && previous !== epoch) {
      // Best effort: a leftover mark of an older epoch is harmless and goes with the lease.
      const stale = keys.ready(previous, this.member.id);
      await this.options.client.delete().key(stale).options(this.deadline()).exec().catch((err: Error) => this.log.warn(`removing ${stale}: ${err.message}`));
    }
  }

  /** Stops keepalives and revokes the lease, so the records vanish at once. Never rejects: when
   * etcd does not answer, the lease simply expires after its TTL. */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.transition(['idle', 'registering', 'registered', 'retrying'], 'closed');
    this.fenceTimer?.cancel();
    this.retryTimer?.cancel();
    this.deadlineMs = -Infinity;
    this.fence('closed');
    this.firstRegistration?.reject(new BoraError('CANCELLED', 'registration closed before it registered'));
    this.firstRegistration = undefined;
    const lease = this.lease;
    this.lease = undefined;
    this.leaseId = undefined;
    await Promise.all(this.staleLeases.splice(0).map((stale) => stale.revoke(this.deadline()).catch(() => undefined)));
    if (lease === undefined) return;
    try {
      await this.call('revoking the lease', lease.revoke(this.deadline()));
    } catch (err) {
      this.log.warn(`${(err as Error).message}; it expires after its TTL instead`);
    }
  }

  private deadline(): { deadline: number } {
    return callDeadline(this.options.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS);
  }

  private transition(from: readonly RegistrationState[], to: RegistrationState): void {
    if (!from.includes(this.state)) {
      throw new FailedPreconditionError(`registration ${this.member.id}: bad transition ${this.state} -> ${to}`);
    }
    if (TRACE) this.log.debug(`registration ${this.member.id}: ${this.state} -> ${to}`);
    this.state = to;
  }

  private async call(what: string, op: PromiseLike<unknown>): Promise<void> {
    try {
      await op;
    } catch (err) {
      throw new UnavailableError(`${what} for worker ${this.member.id}: ${(err as Error).message}`, { cause: err });
    }
  }

  private async register(): Promise<void> {
    this.transition(['idle', 'retrying'], 'registering');
    const { client, keys } = this.options;
    const sentAtMs = this.clock.nowMs();
    const lease = client.lease(this.ttlMs / 1000, { autoKeepAlive: true, ...this.deadline() }); // deadline: of the grant only
    this.lease = lease;
    this.unackedSendsMs = [];
    lease.on('lost', (err: Error) => this.onLost(lease, err));
    lease.on('keepaliveEstablished', () => {
      if (this.lease === lease) this.unackedSendsMs = []; // a new stream: older sends get no ack
    });
    lease.on('keepaliveFired', () => {
      if (this.lease === lease) this.unackedSendsMs.push(this.clock.nowMs());
    });
    lease.on('keepaliveSucceeded', () => {
      const sentMs = this.lease === lease ? this.unackedSendsMs.shift() : undefined;
      if (sentMs !== undefined) this.renewed(sentMs);
    });
    const member = this.member;
    const readyEpoch = this.readyEpoch;
    let leaseId: string | undefined;
    try {
      leaseId = await lease.grant();
      await this.putOnLease(lease, leaseId, keys.member(member.id), encodeMember(member));
      if (readyEpoch !== undefined) await this.putOnLease(lease, leaseId, keys.ready(readyEpoch, member.id), '');
    } catch (err) {
      lease.release(); // stop keepalives
      if (leaseId !== undefined) this.staleLeases.push(lease); // granted: revoke once etcd answers
      if (this.state !== 'registering') return; // closed meanwhile
      this.lease = undefined;
      this.transition(['registering'], 'retrying');
      this.log.warn(`worker ${member.id}: registration failed (${(err as Error).message}); retrying in ${this.retryDelayMs} ms`);
      this.scheduleRetry();
      return;
    }
    if (this.state !== 'registering') {
      await lease.revoke(this.deadline()).catch(() => undefined); // closed while registering
      return;
    }
    this.transition(['registering'], 'registered');
    this.leaseId = leaseId;
    this.retryDelayMs = this.options.retryInitialMs ?? DEFAULT_RETRY_INITIAL_MS;
    this.emit('registered', leaseId);
    this.renewed(sentAtMs);
    this.firstRegistration?.resolve();
    this.firstRegistration = undefined;
    // Records changed while registering go out now; failures only delay them to the next call.
    if (this.member !== member) void this.updateLoad(this.member.load).catch((e: Error) => this.log.warn(e.message));
    if (this.readyEpoch !== readyEpoch && this.readyEpoch !== undefined) {
      void this.markReady(this.readyEpoch).catch((e: Error) => this.log.warn(e.message));
    }
    // The records moved to the new lease: revoke the dead ones now rather than wait for their TTL.
    for (const stale of this.staleLeases.splice(0)) void stale.revoke(this.deadline()).catch(() => undefined);
  }

  /**
   * Puts `key` on the lease through the plain client: etcd3's `lease.put()` drops per-call
   * options (its wrapper forwards no deadline). A "lease not found" reply means the lease is gone.
   */
  private async putOnLease(lease: Lease, leaseId: string, key: string, value: string): Promise<void> {
    try {
      await this.options.client.put(key).value(value).lease(leaseId).options(this.deadline()).exec();
    } catch (err) {
      if (err instanceof EtcdLeaseInvalidError) this.onLost(lease, err);
      throw err;
    }
  }

  private scheduleRetry(): void {
    this.retryTimer = this.clock.setTimer(() => {
      this.retryTimer = undefined;
      if (this.state === 'retrying') void this.register();
    }, this.retryDelayMs);
    this.retryDelayMs = Math.min(this.retryDelayMs * 2, this.options.retryMaxMs ?? DEFAULT_RETRY_MAX_MS);
  }

  private onLost(lease: Lease, err: Error): void {
    // Only the loss of the current, registered lease matters; a failed grant is handled by
    // register(), and repeated 'lost' events of a dead lease are ignored.
    if (lease !== this.lease || this.state !== 'registered') return;
    this.transition(['registered'], 'retrying');
    this.lease = undefined;
    this.leaseId = undefined;
    this.staleLeases.push(lease);
    this.fence(`lease lost: ${err.message}`);
    this.log.warn(`worker ${this.member.id}: lease lost (${err.message}); registering with a new lease`);
    this.scheduleRetry();
  }

  /** A keepalive sent at `sentAtMs` (or the grant) was acknowledged. */
  private renewed(sentAtMs: number): void {
    this.deadlineMs = Math.max(this.deadlineMs, sentAtMs + this.ttlMs - this.marginMs);
    this.armFenceTimer();
    if (this.isServing() && !this.announcedServing) {
      this.announcedServing = true;
      this.emit('serving');
    }
  }

  private armFenceTimer(): void {
    this.fenceTimer?.cancel();
    const delayMs = Math.max(0, this.deadlineMs - this.clock.nowMs());
    this.fenceTimer = this.clock.setTimer(() => {
      this.fenceTimer = undefined;
      if (this.clock.nowMs() >= this.deadlineMs) this.fence(`no keepalive acknowledged within ${this.ttlMs - this.marginMs} ms`);
      else this.armFenceTimer();
    }, delayMs);
  }

  private fence(reason: string): void {
    this.fenceTimer?.cancel();
    this.fenceTimer = undefined;
    if (this.state !== 'registered') this.deadlineMs = -Infinity;
    if (!this.announcedServing) return;
    this.announcedServing = false;
    this.log.warn(`worker ${this.member.id}: fenced (${reason})`);
    this.emit('fenced', reason);
  }
}
