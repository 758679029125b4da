/**
 * The model registry in etcd: registered versions (ModelVersionRecord, one key each) and the
 * failure reports of workers that found a weight digest not matching a record. A version is
 * `failed` while any report names it; `bora models list` shows why.
 *
 * Used by `bora models` with --state-dir (etcd directly, as the cluster's admin), by the
 * coordinator's admin API (--coordinator) and by workers (read a record, report a failure).
 * Every write is one etcd transaction, so two operators racing get one winner:
 *   - add: only when no record of that NAME@VERSION exists (FAILED_PRECONDITION otherwise);
 *   - remove: only while the current plan does not serve the version, checked against the plan
 *     key's revision in the same transaction (FAILED_PRECONDITION while it serves traffic).
 */
import type { Etcd3 } from 'etcd3';
import { callDeadline, type EtcdKeys } from '../cluster/etcd-keys';
import { decodePlan } from '../cluster/plan';
import { FailedPreconditionError, NotFoundError } from '../errors';
import type { WorkerId } from '../ids';
import { formatModelRef, type ModelRef } from './model-ref';
import { decodeVersionFailure, decodeVersionRecord, encodeVersionRecord, recordRefText, type ModelVersionRecord, type VersionFailure } from './version-record';

export type VersionStatus = 'ready' | 'failed';

/** A record with what the workers said about it. */
export interface RegisteredVersion {
  readonly record: ModelVersionRecord;
  readonly status: VersionStatus;
  readonly failures: readonly VersionFailure[];
}

export class ModelRegistry {
  constructor(
    private readonly etcd: Etcd3,
    private readonly keys: EtcdKeys,
  ) {}

  /**
   * Records a version; FAILED_PRECONDITION when NAME@VERSION is registered already. Failure
   * reports left over from an earlier record of the same name (one that arrived while it was
   * being removed) go in the same transaction: they were about other files.
   */
  async add(record: ModelVersionRecord): Promise<void> {
    const ref = recordRefText(record);
    const key = this.keys.modelVersion(ref);
    const value = encodeVersionRecord(record);
    const stale = await this.failureKeys(ref);
    const txn = await this.etcd
      .if(key, 'Create', '==', 0)
      .options(callDeadline())
      .then(this.etcd.put(key).value(value), ...stale.map((k) => this.etcd.delete().key(k)))
      .commit();
    if (!txn.succeeded) throw new FailedPreconditionError(`model ${ref} is already registered (remove it first to register other files under that version)`);
  }

  /** The record of `ref`, or undefined. */
  async get(ref: ModelRef): Promise<ModelVersionRecord | undefined> {
    const key = this.keys.modelVersion(formatModelRef(ref));
    const text = await this.etcd.get(key).options(callDeadline()).string();
    return text === null ? undefined : decodeVersionRecord(text, key);
  }

  /** The record of `ref`; NOT_FOUND when it is not registered. */
  async require(ref: ModelRef): Promise<ModelVersionRecord> {
    const record = await this.get(ref);
    if (record === undefined) throw new NotFoundError(`model ${formatModelRef(ref)} is not registered (bora models list shows what is)`);
    return record;
  }

  /**
   * The record of a version about to serve: NOT_FOUND when it is not registered,
   * FAILED_PRECONDITION when a worker reported a digest mismatch for it.
   */
  async requireServable(ref: ModelRef): Promise<ModelVersionRecord> {
    const { record, failures } = await this.describe(ref);
    if (failures.length > 0) {
      const f = failures[0];
      throw new FailedPreconditionError(`model ${formatModelRef(ref)} is marked failed: worker ${f.worker} found ${f.file} with SHA-256 ${f.actualSha256}, registered ${f.expectedSha256}`);
    }
    return record;
  }

  /** Every version, sorted by name then version, with its failure reports. */
  async list(): Promise<RegisteredVersion[]> {
    const records = await this.etcd.getAll().prefix(this.keys.modelVersionsPrefix()).options(callDeadline()).strings();
    const failures = await this.allFailures();
    return Object.entries(records)
      .map(([key, text]) => decodeVersionRecord(text, key))
      .sort((a, b) => (a.name === b.name ? compareText(a.version, b.version) : compareText(a.name, b.name)))
      .map((record) => withStatus(record, failures.filter((f) => f.ref === recordRefText(record))));
  }

  /** One version with its status; NOT_FOUND when it is not registered. */
  async describe(ref: ModelRef): Promise<RegisteredVersion> {
    const record = await this.require(ref);
    return withStatus(record, await this.failures(ref));
  }

  /** The failure reports naming `ref`. */
  async failures(ref: ModelRef): Promise<VersionFailure[]> {
    const text = formatModelRef(ref);
    return (await this.allFailures()).filter((f) => f.ref === text);
  }

  /** A worker's report that its weights for `failure.ref` do not match the record. */
  async reportFailure(worker: WorkerId, failure: VersionFailure): Promise<void> {
    await this.etcd.put(this.keys.modelFailure(worker, failure.ref)).value(JSON.stringify(failure)).options(callDeadline());
  }

  /**
   * Deletes `ref`'s record and its failure reports. NOT_FOUND when it is not registered;
   * FAILED_PRECONDITION while the current plan serves it (checked in the same transaction).
   */
  async remove(ref: ModelRef): Promise<void> {
    const text = formatModelRef(ref);
    const key = this.keys.modelVersion(text);
    const planKey = this.keys.plan();
    const plan = await this.etcd.get(planKey).options(callDeadline()).exec();
    const planKv = plan.kvs[0];
    if (planKv !== undefined) {
      const served = decodePlan(planKv.value.toString('utf8'));
      if (served.modelVersion === text) throw new FailedPreconditionError(`model ${text} serves traffic (plan epoch ${served.epoch}); it cannot be removed while it does`);
    }
    const failureKeys = await this.failureKeys(text);
    const txn = this.etcd
      .if(key, 'Create', '>', 0)
      .and(planKey, 'Mod', '==', planKv === undefined ? 0 : Number(planKv.mod_revision))
      .options(callDeadline())
      .then(this.etcd.delete().key(key), ...failureKeys.map((k) => this.etcd.delete().key(k)));
    const result = await txn.commit();
    if (result.succeeded) return;
    if ((await this.get(ref)) === undefined) throw new NotFoundError(`model ${text} is not registered`);
    throw new FailedPreconditionError(`model ${text}: the plan changed while it was being removed; try again`);
  }

  /** The keys of every worker's failure report about `ref` (NAME@VERSION). */
  private async failureKeys(ref: string): Promise<string[]> {
    const all = await this.etcd.getAll().prefix(this.keys.modelFailuresPrefix()).options(callDeadline()).keys();
    return all.filter((k) => k.endsWith(`/${ref}`));
  }

  private async allFailures(): Promise<VersionFailure[]> {
    const reports = await this.etcd.getAll().prefix(this.keys.modelFailuresPrefix()).options(callDeadline()).strings();
    return Object.entries(reports).map(([key, text]) => decodeVersionFailure(text, key));
  }
}

function withStatus(record: ModelVersionRecord, failures: readonly VersionFailure[]): RegisteredVersion {
  return { record, status: failures.length > 0 ? 'failed' : 'ready', failures };
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
