/**
 * Cluster membership as the coordinator sees it: the records under `members/`, followed with a
 * SyncedWatch (list, then watch from the listed revision; re-list after any break) and turned
 * into join / update / leave events.
 */
import { type Etcd3 } from 'etcd3';
import { type EtcdKeys } from '../common/cluster/etcd-keys';
import { type MemberInfo, memberChanged, tryDecodeMember } from '../common/cluster/member';
import { type KeyChange, type KeyState, type Log, SyncedWatch, defaultLog } from '../common/cluster/synced-watch';
import { type WorkerId } from '../common/ids';

export type MembershipEvent =
  | { readonly type: 'join'; readonly member: MemberInfo }
  | { readonly type: 'update'; readonly member: MemberInfo; readonly previous: MemberInfo }
  | { readonly type: 'leave'; readonly member: MemberInfo };

export interface MembershipWatchOptions {
  /** Best made by createEtcdClient: the watch reconnect backoff is a client-wide setting. */
  readonly client: Etcd3;
  readonly keys: EtcdKeys;
  readonly log?: Log;
  readonly resyncInitialMs?: number;
  readonly resyncMaxMs?: number;
}

/** The live member map, with join/update/leave events. A record that does not decode is logged
 * and ignored (the previous record, if any, stays). */
export class MembershipWatch {
  private readonly current = new Map<WorkerId, MemberInfo>();
  private readonly listeners = new Set<(event: MembershipEvent) => void>();
  private readonly watch: SyncedWatch;
  private readonly log: Log;

  constructor(private readonly options: MembershipWatchOptions) {
    this.log = options.log ?? defaultLog();
    this.watch = new SyncedWatch({
      client: options.client,
      range: { prefix: options.keys.membersPrefix() },
      onSnapshot: (kvs) => this.onSnapshot(kvs),
      onChange: (change) => this.onChange(change),
      resyncInitialMs: options.resyncInitialMs,
      resyncMaxMs: options.resyncMaxMs,
      log: this.log,
    });
  }

  /** Subscribes to events; returns the unsubscribe function. */
  onEvent(listener: (event: MembershipEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Resolves once the first list is in `members()` and the watch runs. */
  start(): Promise<void> {
    return this.watch.start();
  }

  members(): ReadonlyMap<WorkerId, MemberInfo> {
    return this.current;
  }

  close(): Promise<void> {
    return this.watch.close();
  }

  private decode(kv: KeyState): MemberInfo | undefined {
    const id = this.options.keys.memberIdOf(kv.key);
    if (id === undefined) {
      this.log.warn(`ignoring ${kv.key}: not a valid member key`);
      return undefined;
    }
    const result = tryDecodeMember(kv.value.toString(), id);
    if (!result.ok) this.log.warn(`ignoring ${kv.key}: ${result.reason}`);
    return result.ok ? result.member : undefined;
  }

  private emit(event: MembershipEvent): void {
    for (const listener of this.listeners) listener(event);
  }

  private onSnapshot(kvs: readonly KeyState[]): void {
    const listed = new Map<WorkerId, MemberInfo>();
    for (const kv of kvs) {
      const id = this.options.keys.memberIdOf(kv.key);
      const member = this.decode(kv);
      if (id !== undefined) {
        const kept = member ?? this.current.get(id);
        if (kept !== undefined) listed.set(id, kept);
      }
    }
    const ids = [...new Set([...this.current.keys(), ...listed.keys()])].sort();
    for (const id of ids) {
      const before = this.current.get(id);
      const after = listed.get(id);
      if (after === undefined && before !== undefined) {
        this.current.delete(id);
        this.emit({ type: 'leave', member: before });
      } else if (after !== undefined && before === undefined) {
        this.current.set(id, after);
        this.emit({ type: 'join', member: after });
      } else if (after !== undefined && before !== undefined && memberChanged(before, after)) {
        this.current.set(id, after);
        this.emit({ type: 'update', member: after, previous: before });
      }
    }
  }

  private onChange(change: KeyChange): void {
    if (change.type === 'delete') {
      const id = this.options.keys.memberIdOf(change.key);
      const before = id === undefined ? undefined : this.current.get(id);
      if (id === undefined || before === undefined) return;
      this.current.delete(id);
      this.emit({ type: 'leave', member: before });
      return;
    }
    const member = this.decode(change.kv);
    if (member === undefined) return;
    const before = this.current.get(member.id);
    this.current.set(member.id, member);
    if (before === undefined) this.emit({ type: 'join', member });
    else if (memberChanged(before, member)) this.emit({ type: 'update', member, previous: before });
  }
}
