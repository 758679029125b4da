/**
 * Expert dispatch figures gathered where dispatch happens (the engine thread) and handed to the
 * worker's metrics on the main thread with each forward reply: RemoteExperts' hooks add to a
 * collector, take() empties it. On the main thread RoutedTokens keeps the running token counts
 * that the worker's Status reply gives the coordinator for expert placement.
 */
import type { BoraError } from '../common/errors';
import type { ExpertRole, RemoteExpertsHooks } from './remote-experts';

export interface ExpertDispatchStats {
  /** Tokens per expert since the last take(), summed per (layer, expert). */
  readonly tokens: readonly { readonly layer: number; readonly expert: number; readonly tokens: number }[];
  /** One entry per remote round trip that answered, in seconds. */
  readonly dispatchSeconds: readonly number[];
  /** Expert calls served, by which copy served them. */
  readonly served: Readonly<Record<ExpertRole, number>>;
  /** Holders that failed and had their calls moved to a replica. */
  readonly holderFailures: number;
  /** The latest of those failures, for the worker's log. */
  readonly lastFailure?: string;
}

export class ExpertStatsCollector {
  private tokens = new Map<string, { layer: number; expert: number; tokens: number }>();
  private dispatchSeconds: number[] = [];
  private served = zeroRoles();
  private holderFailures = 0;
  private lastFailure: string | undefined;

  readonly hooks: RemoteExpertsHooks = {
    onTokens: (layer, expert, tokens) => {
      const k = `${layer}:${expert}`;
      const entry = this.tokens.get(k) ?? { layer, expert, tokens: 0 };
      entry.tokens += tokens;
      this.tokens.set(k, entry);
    },
    onDispatch: (_address, seconds) => this.dispatchSeconds.push(seconds),
    onServed: (role) => this.served[role]++,
    onHolderFailed: (address: string, err: BoraError) => {
      this.holderFailures++;
      this.lastFailure = `${address}: ${err.message}`;
    },
  };

  /** The figures since the last call, or undefined when nothing happened. */
  take(): ExpertDispatchStats | undefined {
    if (this.tokens.size === 0 && this.dispatchSeconds.length === 0 && this.holderFailures === 0) return undefined;
    const stats: ExpertDispatchStats = {
      tokens: [...this.tokens.values()],
      dispatchSeconds: this.dispatchSeconds,
      served: this.served,
      holderFailures: this.holderFailures,
      ...(this.lastFailure === undefined ? {} : { lastFailure: this.lastFailure }),
    };
    this.tokens = new Map();
    this.dispatchSeconds = [];
    this.served = zeroRoles();
    this.holderFailures = 0;
    this.lastFailure = undefined;
    return stats;
  }
}

/** Tokens routed per (layer, expert) since the worker started: the sum of every take()'s tokens. */
export class RoutedTokens {
  private readonly totals = new Map<string, { layer: number; expert: number; tokens: number }>();

  add(tokens: ExpertDispatchStats['tokens']): void {
    for (const t of tokens) {
      const k = `${t.layer}:${t.expert}`;
      const entry = this.totals.get(k) ?? { layer: t.layer, expert: t.expert, tokens: 0 };
      entry.tokens += t.tokens;
      this.totals.set(k, entry);
    }
  }

  /** Every (layer, expert) that got tokens, in layer then expert order (copies, not live entries). */
  list(): { layer: number; expert: number; tokens: number }[] {
    return [...this.totals.values()].map((t) => ({ ...t })).sort((a, b) => a.layer - b.layer || a.expert - b.expert);
  }
}

// A literal rather than built from the metrics' role list: the engine thread has no use for prom-client.
function zeroRoles(): Record<ExpertRole, number> {
  return { local: 0, primary: 0, replica: 0 };
}
