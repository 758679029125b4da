/**
 * The published plan in etcd: reading it, publishing the next epoch, following it (workers), and
 * waiting until workers report that they loaded it.
 *
 * Fencing: `plan` and `plan-epoch` are written in one transaction that commits only if
 * `plan-epoch` still holds epoch - 1 (or is absent, for epoch 1). Two coordinators that both
 * believe they lead can therefore never both publish epoch n: the loser gets a
 * FailedPreconditionError and must re-read the plan before deciding again.
 */
import { type Etcd3, type IRangeResponse, type ITxnResponse } from 'etcd3';
import { type EtcdKeys, callDeadline, checkEpoch } from './etcd-keys';
import { type Plan, decodePlan, encodePlan } from './plan';
import { BoraError, FailedPreconditionError, InvalidArgumentError, UnavailableError } from '../errors';
import { type WorkerId } from '../ids';
import { type KeyState, type Log, SyncedWatch, defaultLog } from './synced-watch';

export interface PlanStoreOptions {
  readonly client: Etcd3;
  readonly keys: EtcdKeys;
  readonly log?: Log;
}

/** A running plan subscription. */
export interface PlanWatch {
  /** Resolves once the stored plan (if any) was read and the watch runs; rejects if closed first. */
  readonly ready: Promise<void>;
  close(): Promise<void>;
}

function etcdFailure(what: string, err: unknown): BoraError {
  if (err instanceof BoraError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new UnavailableError(`${what}: etcd did not answer (${message})`, { cause: err });
}

export class PlanStore {
  private readonly log: Log;

  constructor(private readonly options: PlanStoreOptions) {
    this.log = options.log ?? defaultLog();
  }

  /** The stored plan, or undefined before the first publish. A stored plan that does not decode
   * is a FailedPreconditionError: the coordinator cannot decide the next epoch on top of it. */
  async current(): Promise<Plan | undefined> {
    let text: string | null;
    try {
      text = await this.options.client.get(this.options.keys.plan()).options(callDeadline()).string();
    } catch (err) {
      throw etcdFailure('reading the plan', err);
    }
    if (text === null) return undefined;
    try {
      return decodePlan(text);
    } catch (err) {
      throw new FailedPreconditionError(`the stored plan is unusable: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * Publishes `plan` as the next epoch. Rejects with FailedPreconditionError when the stored
   * epoch is not plan.epoch - 1 (another coordinator got there first), InvalidArgumentError when
   * the plan is invalid, and UnavailableError when etcd did not answer: then the outcome is
   * unknown and the caller must read `current()` before retrying.
   */
  async publish(plan: Plan): Promise<void> {
    const text = encodePlan(plan);
    const { client, keys } = this.options;
    const epochKey = keys.planEpoch();
    const guard =
      plan.epoch === 1
        ? client.if(epochKey, 'Create', '==', 0) // the key does not exist yet
        : client.if(epochKey, 'Value', '==', String(plan.epoch - 1));
    let result: ITxnResponse;
    try {
      result = await guard
        .options(callDeadline())
        .then(client.put(keys.plan()).value(text), client.put(epochKey).value(String(plan.epoch)))
        .else(client.get(epochKey))
        .commit();
    } catch (err) {
      throw etcdFailure(`publishing plan epoch ${plan.epoch} (outcome unknown)`, err);
    }
    if (result.succeeded) return;
    const stored = (result.responses[0]?.response_range as IRangeResponse | undefined)?.kvs[0]?.value.toString();
    throw new FailedPreconditionError(
      `cannot publish plan epoch ${plan.epoch}: the stored epoch is ${stored ?? 'absent'}, expected ${plan.epoch === 1 ? 'absent' : plan.epoch - 1}`,
    );
  }

  /**
   * Calls `onPlan` with the stored plan and every later one, in increasing epoch order. A plan
   * whose epoch is not above the last delivered one is skipped, as is one that does not decode
   * (logged). Survives etcd restarts: a broken watch re-reads the plan and watches again.
   */
  watchPlan(onPlan: (plan: Plan) => void): PlanWatch {
    let lastEpoch = 0;
    const consider = (kv: KeyState): void => {
      let plan: Plan;
      try {
        plan = decodePlan(kv.value.toString());
      } catch (err) {
        this.log.warn(`ignoring plan at revision ${kv.modRevision}: ${(err as Error).message}`);
        return;
      }
      if (plan.epoch <= lastEpoch) return;
      lastEpoch = plan.epoch;
      onPlan(plan);
    };
    const watch = new SyncedWatch({
      client: this.options.client,
      range: { key: this.options.keys.plan() },
      onSnapshot: (kvs) => kvs.forEach(consider),
      onChange: (change) => {
        if (change.type === 'put') consider(change.kv);
      },
      log: this.log,
    });
    const ready = watch.start();
    ready.catch(() => undefined); // a close before the first sync is not an unhandled rejection
    return { ready, close: () => watch.close() };
  }

  /**
   * Resolves when every worker in `workerIds` has a ready mark for `epoch`. A mark that vanishes
   * (its worker's lease expired) no longer counts. Rejects with DEADLINE_EXCEEDED naming the
   * missing workers after `timeoutMs`.
   */
  waitReady(epoch: number, workerIds: readonly WorkerId[], timeoutMs: number): Promise<void> {
    const { client, keys } = this.options;
    checkEpoch(epoch);
    const prefix = keys.readyPrefix(); // marks of every epoch: keys are ready/<worker>/<epoch>
    if (!(timeoutMs > 0)) return Promise.reject(new InvalidArgumentError(`timeoutMs must be positive, got ${timeoutMs}`));
    const wanted = new Set(workerIds);
    if (wanted.size === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      let ready = new Set<WorkerId>();
      let done = false;
      const finish = (err?: Error): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        void watch.close();
        if (err === undefined) resolve();
        else reject(err);
      };
      const check = (): void => {
        if ([...wanted].every((id) => ready.has(id))) finish();
      };
      const idOf = (key: string): WorkerId | undefined => keys.readyIdOf(epoch, key);
      const watch = new SyncedWatch({
        client,
        range: { prefix },
        onSnapshot: (kvs) => {
          ready = new Set(kvs.map((kv) => idOf(kv.key)).filter((id): id is WorkerId => id !== undefined));
          check();
        },
        onChange: (change) => {
          const id = idOf(change.type === 'put' ? change.kv.key : change.key);
          if (id === undefined) return;
          if (change.type === 'put') ready.add(id);
          else ready.delete(id);
          check();
        },
        log: this.log,
      });
      const timer = setTimeout(() => {
        const missing = [...wanted].filter((id) => !ready.has(id)).sort();
        finish(new BoraError('DEADLINE_EXCEEDED', `epoch ${epoch}: not ready after ${timeoutMs} ms: ${missing.join(', ')}`));
      }, timeoutMs);
      watch.start().catch(() => undefined); // only rejects when finish() closed it
    });
  }
}
