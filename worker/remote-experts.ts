/**
 * RemoteExperts: the ExpertBackend of a stage whose layers' experts live on workers (this one
 * possibly among them), as the plan's expert placement says.
 *
 * One layer step becomes one RunExperts call per destination worker, carrying every token routed
 * to the experts that destination serves; the calls go out in parallel and the outputs come back
 * in call order. Every copy of an expert computes the same function of the same weights, so any
 * holder may serve it: when a holder fails (unreachable, deadline, an error of its own), its
 * calls go to another holder in the same step, and the result is token for token the same.
 * Only when every holder of an expert has failed does the step fail, with a retryable
 * UnavailableError: the micro-batch then fails and the coordinator replays it on the next plan.
 *
 * Which holder serves an expert: this worker when it holds it (no network); else its holders
 * that have not failed within the last `failedHolderPenaltyMs` take turns, one step each in plan
 * order (so the first step asks the primary, and a hot expert's calls spread over its copies, as
 * placement expects); else, when every holder left has failed lately, those take turns. Turns
 * are counted per (layer, expert) and step, so the choice is deterministic. A holder on another
 * plan epoch (FAILED_PRECONDITION: it has not installed ours yet, or has moved on) is skipped for
 * the step; when no holder is left, the step waits `staleRetryDelayMs` and asks again, at most
 * `staleRetries` times.
 */
import { BoraError, InternalError, UnavailableError, asBoraError } from '../common/errors';
import { expertKey, type ExpertBackend, type ExpertCall } from '../common/engine/experts';
import type { ExpertCallRole } from './worker-metrics';

/** Every holder of one expert of one layer, by address; the first is the primary. */
export interface ExpertHolders {
  readonly layer: number;
  readonly expert: number;
  readonly addresses: readonly string[];
}

/** The plan's expert placement as a stage needs it: which addresses hold what, for which epoch. */
export interface ExpertTable {
  readonly epoch: number;
  readonly table: readonly ExpertHolders[];
}

export interface ExpertRequestSpec {
  readonly epoch: number;
  readonly layer: number;
  readonly calls: readonly ExpertCall[];
}

/** One RunExperts round trip to one holder; resolves to one (tokens, H) output per call, in order. */
export interface ExpertTransport {
  run(address: string, request: ExpertRequestSpec, deadlineMs: number): Promise<Float32Array[]>;
  close(): void;
}

/** Which copy served an expert call: this worker's own, the plan's first holder, or another. */
export type ExpertRole = ExpertCallRole;

export interface RemoteExpertsHooks {
  /** Tokens routed to an expert in one layer step (once per step, whoever serves them). */
  onTokens?(layer: number, expert: number, tokens: number): void;
  /** A remote round trip that answered: send, compute on the holder, receive. */
  onDispatch?(address: string, seconds: number): void;
  /** An expert call was served, by which copy. */
  onServed?(role: ExpertRole): void;
  /** A holder failed; its calls of this step go to another copy. */
  onHolderFailed?(address: string, err: BoraError): void;
}

/** This worker's own expert set: calls for experts it holds run here, without gRPC. */
export interface LocalHolder {
  readonly address: string;
  readonly experts: ExpertBackend;
}

export interface RemoteExpertsOptions {
  readonly transport: ExpertTransport;
  readonly local?: LocalHolder;
  /** Deadline of one RunExperts call. */
  readonly deadlineMs?: number;
  /** A holder that failed goes to the back of the line for this long. */
  readonly failedHolderPenaltyMs?: number;
  readonly staleRetries?: number;
  readonly staleRetryDelayMs?: number;
  readonly hooks?: RemoteExpertsHooks;
  /** Monotonic clock in ms; performance.now() by default. */
  readonly now?: () => number;
}

export const DEFAULT_EXPERT_DEADLINE_MS = 10_000;
const DEFAULT_FAILED_HOLDER_PENALTY_MS = 5_000;
const DEFAULT_STALE_RETRIES = 3;
const DEFAULT_STALE_RETRY_DELAY_MS = 50;

/** How a holder's error bears on the step. */
type Failure = 'holder' | 'stale' | 'fatal';

function classify(err: BoraError): Failure {
  if (err.code === 'FAILED_PRECONDITION') return 'stale';
  // The request itself was refused: every copy would refuse it the same way.
  if (err.code === 'INVALID_ARGUMENT') return 'fatal';
  return 'holder';
}

export class RemoteExperts implements ExpertBackend {
  private table!: ExpertTable;
  private holders = new Map<string, readonly string[]>();
  private local: LocalHolder | undefined;
  private readonly failedAtMs = new Map<string, number>();
  /** Steps that have dispatched each expert, by expertKey: whose turn it is among its holders. */
  private readonly turns = new Map<string, number>();
  private readonly now: () => number;

  constructor(
    table: ExpertTable,
    private readonly options: RemoteExpertsOptions,
  ) {
    this.now = options.now ?? (() => performance.now());
    this.update(table, options.local);
  }

  get epoch(): number {
    return this.table.epoch;
  }

  /** A new plan: its epoch and placement (and this worker's expert set) from the next step on. */
  update(table: ExpertTable, local: LocalHolder | undefined): void {
    const holders = new Map<string, readonly string[]>();
    for (const h of table.table) holders.set(expertKey(h.layer, h.expert), h.addresses);
    this.table = table;
    this.holders = holders;
    this.local = local;
  }

  async run(layer: number, calls: readonly ExpertCall[]): Promise<Float32Array[]> {
    const hooks = this.options.hooks;
    const epoch = this.table.epoch;
    const holders = this.holders;
    const local = this.local;
    for (const call of calls) hooks?.onTokens?.(layer, call.expert, call.tokens);
    // One turn per expert per step, kept for the whole step (a retry after a failure included).
    const turns = calls.map((call) => {
      const key = expertKey(layer, call.expert);
      const turn = this.turns.get(key) ?? 0;
      this.turns.set(key, turn + 1);
      return turn;
    });

    const outputs: (Float32Array | undefined)[] = calls.map(() => undefined);
    const failed = new Set<string>(); // holders that failed in this step
    const stale = new Set<string>(); // holders on another epoch in this step
    const reasons: string[] = [];
    let staleRounds = 0;
    let pending = calls.map((_, i) => i);
    while (pending.length > 0) {
      const skip = (address: string): boolean => failed.has(address) || stale.has(address);
      const byDestination = new Map<string, number[]>();
      let orphan: number | undefined;
      for (const i of pending) {
        const address = this.pick(holders.get(expertKey(layer, calls[i].expert)) ?? [], local, skip, turns[i]);
        if (address === undefined) {
          orphan = i;
          break;
        }
        byDestination.set(address, [...(byDestination.get(address) ?? []), i]);
      }
      if (orphan !== undefined) {
        if (stale.size > 0 && staleRounds < (this.options.staleRetries ?? DEFAULT_STALE_RETRIES)) {
          staleRounds++;
          stale.clear();
          await new Promise((r) => setTimeout(r, this.options.staleRetryDelayMs ?? DEFAULT_STALE_RETRY_DELAY_MS));
          continue;
        }
        const expert = calls[orphan].expert;
        const why = reasons.length === 0 ? 'no holder is known' : reasons.join('; ');
        throw new UnavailableError(`no holder of expert ${expert} of layer ${layer} could run it (epoch ${epoch}): ${why}`);
      }

      // Remote calls first, so they are on the wire while this thread computes its own experts.
      const destinations = [...byDestination.entries()].sort(([a], [b]) => Number(a === local?.address) - Number(b === local?.address));
      const settled = await Promise.all(
        destinations.map(([address, indices]) =>
          this.send(address, local, { epoch, layer, calls: indices.map((i) => calls[i]) }).then(
            (result) => ({ address, indices, result, error: undefined }),
            (err: unknown) => ({ address, indices, result: undefined, error: asBoraError(err) }),
          ),
        ),
      );

      pending = [];
      let fatal: BoraError | undefined;
      for (const { address, indices, result, error } of settled) {
        if (result !== undefined) {
          this.failedAtMs.delete(address);
          indices.forEach((i, j) => {
            outputs[i] = result[j];
            hooks?.onServed?.(this.roleOf(address, holders.get(expertKey(layer, calls[i].expert)) ?? [], local));
          });
          continue;
        }
        const kind = address === local?.address ? 'fatal' : classify(error!);
        if (kind === 'fatal') {
          fatal ??= error;
          continue;
        }
        reasons.push(`${address}: ${error!.message}`);
        if (kind === 'stale') stale.add(address);
        else {
          failed.add(address);
          this.failedAtMs.set(address, this.now());
          hooks?.onHolderFailed?.(address, error!);
        }
        pending.push(...indices);
      }
      if (fatal !== undefined) throw fatal.code === 'INVALID_ARGUMENT' ? new InternalError(`an expert holder refused a request: ${fatal.message}`, { cause: fatal }) : fatal;
    }
    return outputs as Float32Array[];
  }

  close(): void {
    this.options.transport.close();
  }

  /** The holder to ask: this worker, else the `turn`th of those that have not failed lately
   * (counting round), else of any left. */
  private pick(addresses: readonly string[], local: LocalHolder | undefined, skip: (address: string) => boolean, turn: number): string | undefined {
    const usable = addresses.filter((a) => !skip(a));
    if (local !== undefined && usable.includes(local.address)) return local.address;
    const penaltyMs = this.options.failedHolderPenaltyMs ?? DEFAULT_FAILED_HOLDER_PENALTY_MS;
    const now = this.now();
    const healthy = usable.filter((a) => {
      const at = this.failedAtMs.get(a);
      return at === undefined || now - at >= penaltyMs;
    });
    const candidates = healthy.length > 0 ? healthy : usable;
    return candidates.length === 0 ? undefined : candidates[turn % candidates.length];
  }

  private roleOf(address: string, addresses: readonly string[], local: LocalHolder | undefined): ExpertRole {
    if (address === local?.address) return 'local';
    return address === addresses[0] ? 'primary' : 'replica';
  }

  private async send(address: string, local: LocalHolder | undefined, request: ExpertRequestSpec): Promise<Float32Array[]> {
    if (address === local?.address) return local.experts.run(request.layer, request.calls);
    const started = this.now();
    const outputs = await this.options.transport.run(address, request, this.options.deadlineMs ?? DEFAULT_EXPERT_DEADLINE_MS);
    this.options.hooks?.onDispatch?.(address, (this.now() - started) / 1000);
    return outputs;
  }
}
