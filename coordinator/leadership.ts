/**
 * Coordinator high availability. Every coordinator campaigns in an etcd election; the winner
 * serves, the others stand by (their client API answers UNAVAILABLE, naming the leader when
 * known) until the leader's election lease expires, at most a lease TTL after it died.
 *
 * The leader also keeps its address under `coordinator` on a lease of its own, whose keepalive
 * doubles as the etcd health signal: while renewals fail, `etcdOutage()` is true, frames say so,
 * and workers whose own renewals fail keep serving the current epoch (no plan can change while
 * etcd is away). A campaign that errors while etcd is unreachable does not demote the leader;
 * once etcd answers again, a leader that finds someone else elected steps down.
 */
import { EventEmitter } from 'node:events';
import type { Campaign, Etcd3, Lease } from 'etcd3';
import type { EtcdKeys } from '../common/cluster/etcd-keys';
import type { Logger } from '../common/logging/logger';

export interface LeadershipOptions {
  readonly client: Etcd3;
  readonly keys: EtcdKeys;
  /** The address this coordinator serves clients and workers on. */
  readonly address: string;
  readonly ttlMs: number;
  readonly log: Logger;
}

export interface LeadershipEvents {
  elected: [];
  demoted: [reason: string];
}

const RETRY_MS = 500;

export class Leadership extends EventEmitter<LeadershipEvents> {
  private campaign: Campaign | undefined;
  private lease: Lease | undefined;
  private leader = false;
  private lastEtcdOkMs = performance.now();
  private stopped = false;
  private readonly ttlSeconds: number;

  constructor(private readonly options: LeadershipOptions) {
    super();
    // etcd raises TTLs below its minimum (about 2 s) anyway.
    this.ttlSeconds = Math.max(2, Math.round(options.ttlMs / 1000));
  }

  isLeader(): boolean {
    return this.leader;
  }

  /** True while etcd has not confirmed a renewal for more than half a lease TTL. */
  etcdOutage(): boolean {
    return performance.now() - this.lastEtcdOkMs > this.options.ttlMs / 2;
  }

  /** The current leader's address, from etcd; undefined when unknown. */
  async leaderAddress(): Promise<string | undefined> {
    try {
      return await this.options.client.election(this.options.keys.electionCoordinator(), this.ttlSeconds).leader();
    } catch {
      return undefined;
    }
  }

  start(): void {
    this.keepHealthLease();
    this.runCampaign();
  }

  private keepHealthLease(): void {
    if (this.stopped) return;
    const lease = this.options.client.lease(this.ttlSeconds, { autoKeepAlive: true });
    this.lease = lease;
    lease.on('keepaliveSucceeded', () => {
      this.lastEtcdOkMs = performance.now();
    });
    lease.on('lost', () => {
      if (this.lease !== lease) return;
      this.lease = undefined;
      setTimeout(() => this.keepHealthLease(), RETRY_MS);
    });
    lease
      .put(`${this.options.keys.prefix}/coordinator-health/${process.pid}`)
      .value(this.options.address)
      .then(() => {
        this.lastEtcdOkMs = performance.now();
        if (this.leader) void this.publishAddress();
      })
      .catch(() => undefined); // 'lost' follows and retries
  }

  private async publishAddress(): Promise<void> {
    // Workers that cannot see the checkpoint fetch it from the address published here.
    await this.lease?.put(`${this.options.keys.prefix}/coordinator`).value(this.options.address).catch(() => undefined);
  }

  private runCampaign(): void {
    if (this.stopped) return;
    const campaign = this.options.client.election(this.options.keys.electionCoordinator(), this.ttlSeconds).campaign(this.options.address);
    this.campaign = campaign;
    campaign.on('elected', () => {
      this.lastEtcdOkMs = performance.now();
      if (this.leader) return; // re-elected after a campaign error: nothing changes
      this.leader = true;
      void this.publishAddress();
      this.options.log.info('elected leader');
      this.emit('elected');
    });
    campaign.on('error', (err: Error) => {
      if (this.campaign !== campaign || this.stopped) return;
      this.campaign = undefined;
      this.options.log.warn(`campaign error: ${err.message}`);
      void this.afterCampaignError();
    });
  }

  /** A leader keeps leading through an etcd outage; it steps down only if etcd shows another leader. */
  private async afterCampaignError(): Promise<void> {
    for (;;) {
      if (this.stopped) return;
      const current = await this.leaderAddress();
      if (current !== undefined || !this.etcdOutage()) {
        if (this.leader && current !== undefined && current !== this.options.address) {
          this.leader = false;
          this.options.log.warn(`stepping down: ${current} leads`);
          this.emit('demoted', `${current} was elected`);
        }
        this.runCampaign();
        return;
      }
      await new Promise((r) => setTimeout(r, RETRY_MS));
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const campaign = this.campaign;
    this.campaign = undefined;
    await campaign?.resign().catch(() => undefined);
    await this.lease?.revoke().catch(() => undefined);
    this.leader = false;
  }
}
