/**
 * `SyncedWatch`: a key or prefix in etcd, listed once and then followed with a watch that starts
 * right after the listed revision, so no change between the list and the watch is missed. The
 * coordinator follows membership with it, workers and coordinator the plan.
 *
 * When the watch breaks (etcd restarted, stream reset, compaction cancelled it) it does not trust
 * etcd3's own resume: it cancels the watcher, lists again and starts a new watch from the new
 * revision, and the caller diffs the fresh snapshot against what it held. etcd3's resume is not
 * used because (1) a watch cancelled by compaction is never resumed, and (2) etcd3 moves its
 * resume revision to the creation reply's header revision, so events still in flight when the
 * stream breaks again can be skipped.
 */
import { type Logger, fallbackLogger } from '../logging/logger';
import { type Etcd3, type IKeyValue, type IWatchResponse, type Watcher } from 'etcd3';
import { DEFAULT_CALL_TIMEOUT_MS, callDeadline } from './etcd-keys';
import { BoraError, UnavailableError } from '../errors';

/** First and last delay before re-listing after a broken watch or a failed list. */
export const DEFAULT_RESYNC_INITIAL_MS = 100;
export const DEFAULT_RESYNC_MAX_MS = 2_000;
/** How long a new watch may take to be confirmed by etcd before we call it broken. */
export const DEFAULT_WATCH_CREATE_TIMEOUT_MS = 3_000;
/** How long close() waits for etcd to confirm that a watch was cancelled. */
const CANCEL_TIMEOUT_MS = 1_000;

export interface KeyState {
  readonly key: string;
  readonly value: Buffer;
  /** Revision of the last write to this key. */
  readonly modRevision: number;
  /** Lease the key is attached to, "0" when none. */
  readonly leaseId: string;
}

export type KeyChange =
  | { readonly type: 'put'; readonly kv: KeyState }
  | { readonly type: 'delete'; readonly key: string; readonly modRevision: number };

export type Log = Logger;
/** The logger of a watch given none. */
export const defaultLog = (): Log => fallbackLogger();

export interface SyncedWatchOptions {
  readonly client: Etcd3;
  /** Every key under a prefix, or one exact key. */
  readonly range: { readonly prefix: string } | { readonly key: string };
  /** The whole state after each (re)list; it replaces whatever the caller held before. */
  readonly onSnapshot: (kvs: readonly KeyState[], revision: number) => void;
  /** One change after the last snapshot, in revision order. */
  readonly onChange: (change: KeyChange) => void;
  readonly resyncInitialMs?: number;
  readonly resyncMaxMs?: number;
  readonly watchCreateTimeoutMs?: number;
  /** Deadline of each list call. */
  readonly callTimeoutMs?: number;
  readonly log?: Log;
}

function toKeyState(kv: IKeyValue): KeyState {
  return { key: kv.key.toString(), value: kv.value, modRevision: Number(kv.mod_revision), leaseId: kv.lease };
}

export class SyncedWatch {
  private readonly log: Log;
  private generation = 0;
  private closed = false;
  private watcher: Watcher | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private resyncDelayMs: number;
  private firstSync: { resolve: () => void; reject: (err: Error) => void } | undefined;

  constructor(private readonly options: SyncedWatchOptions) {
    this.log = options.log ?? defaultLog();
    this.resyncDelayMs = options.resyncInitialMs ?? DEFAULT_RESYNC_INITIAL_MS;
  }

  /** Resolves after the first list and watch succeed (retrying meanwhile); rejects if closed first. */
  start(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.firstSync = { resolve, reject };
      void this.sync();
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.generation += 1;
    clearTimeout(this.retryTimer);
    this.firstSync?.reject(new BoraError('CANCELLED', 'watch closed before its first sync'));
    this.firstSync = undefined;
    await this.dropWatcher();
  }

  private describe(): string {
    const r = this.options.range;
    return 'prefix' in r ? `prefix ${r.prefix}` : `key ${r.key}`;
  }

  private async sync(): Promise<void> {
    const generation = ++this.generation;
    const { client, range } = this.options;
    try {
      const deadline = callDeadline(this.options.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS);
      const listed = await ('prefix' in range ? client.getAll().prefix(range.prefix) : client.get(range.key)).options(deadline).exec();
      if (generation !== this.generation) return;
      const revision = Number(listed.header.revision);
      this.options.onSnapshot(listed.kvs.map(toKeyState), revision);
      const builder = client.watch().startRevision(String(revision + 1));
      // watcher() rather than create(): create() cannot be abandoned if etcd never answers.
      const watcher = ('prefix' in range ? builder.prefix(range.prefix) : builder.key(range.key)).watcher();
      this.watcher = watcher;
      watcher.on('data', (res: IWatchResponse) => {
        if (generation === this.generation) this.deliver(res);
      });
      watcher.on('disconnected', (err: Error) => this.broken(generation, err));
      watcher.on('error', (err: Error) => this.broken(generation, err));
      await this.connected(watcher);
      if (generation !== this.generation) return;
      this.resyncDelayMs = this.options.resyncInitialMs ?? DEFAULT_RESYNC_INITIAL_MS;
      this.firstSync?.resolve();
      this.firstSync = undefined;
    } catch (err) {
      this.broken(generation, err);
    }
  }

  private deliver(res: IWatchResponse): void {
    for (const event of res.events) {
      if (event.type === 'Put') {
        this.options.onChange({ type: 'put', kv: toKeyState(event.kv) });
      } else {
        this.options.onChange({ type: 'delete', key: event.kv.key.toString(), modRevision: Number(event.kv.mod_revision) });
      }
    }
  }

  private connected(watcher: Watcher): Promise<void> {
    const timeoutMs = this.options.watchCreateTimeoutMs ?? DEFAULT_WATCH_CREATE_TIMEOUT_MS;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new UnavailableError(`watch on ${this.describe()} not confirmed in ${timeoutMs} ms`)), timeoutMs);
      const settle = (err?: Error): void => {
        clearTimeout(timer);
        watcher.off('connected', onConnected).off('disconnected', settle).off('error', settle);
        if (err === undefined) resolve();
        else reject(err);
      };
      const onConnected = (): void => settle();
      watcher.once('connected', onConnected).once('disconnected', settle).once('error', settle);
    });
  }

  private broken(generation: number, err: unknown): void {
    if (this.closed || generation !== this.generation) return;
    this.generation += 1; // silences the old watcher's late events
    const message = err instanceof Error ? err.message : String(err);
    this.log.warn(`etcd watch on ${this.describe()} broken (${message}); re-listing in ${this.resyncDelayMs} ms`);
    void this.dropWatcher();
    this.retryTimer = setTimeout(() => void this.sync(), this.resyncDelayMs);
    this.resyncDelayMs = Math.min(this.resyncDelayMs * 2, this.options.resyncMaxMs ?? DEFAULT_RESYNC_MAX_MS);
  }

  private async dropWatcher(): Promise<void> {
    const watcher = this.watcher;
    this.watcher = undefined;
    if (watcher === undefined) return;
    // etcd3 waits for etcd to confirm a cancel, which a paused or blackholed etcd never does;
    // the watcher's events are already ignored (generation), so waiting longer gains nothing.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      watcher.cancel().catch(() => undefined),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, CANCEL_TIMEOUT_MS))),
    ]);
    clearTimeout(timer);
  }
}
