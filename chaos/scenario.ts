/**
 * What a scenario is: its id and pass criteria (FAULTS.md), what it needs from the machine, the
 * cluster it runs on, its requests, and the faulted run itself. The runner (runner.ts) does what
 * all scenarios share: topology, cluster, the fault-free reference run, the common invariants,
 * the measures, the report entry and the teardown.
 */
import type { Capabilities } from './capabilities';
import type { ChaosCluster } from './cluster';
import type { Faults } from './faults';
import type { LinkSample } from './link-meter';
import type { LatencySummary } from './measures';
import type { Observer } from './observer';
import type { Timeline } from './timeline';
import type { ClientPolicy, RequestRecord, RequestSpec, Workload } from './workload';

/** FAULTS.md's S0-S10, then Bora's own: E1 (an expert holder dies, issue 5), S11 (a rogue node) and S12 (overload), issue 9. */
export const SCENARIO_IDS = ['S0', 'S1', 'S2', 'S3', 'S4', 'S5', 'S6', 'S7', 'S8', 'S9', 'S10', 'E1', 'S11', 'S12'] as const;
export type ScenarioId = (typeof SCENARIO_IDS)[number];

/** Settings of one harness run, parsed once. */
export interface ChaosEnv {
  readonly caps: Capabilities;
  /** Shorter durations (tests); the criteria stay the same. */
  readonly short: boolean;
  readonly outDir: string;
  readonly modelDir: string;
  /** A Mixtral-shaped model (same vocabulary) for the scenarios that spread experts. */
  readonly expertsModelDir: string;
  readonly modelsDir: string;
  /** The bora.js every node runs. */
  readonly boraJs: string;
  readonly hiddenSize: number;
  readonly vocabSize: number;
  readonly subnet: string;
  readonly leaseTtlMs: number;
  /** Passed to the coordinators as --replicas (2: a standby per layer range). */
  readonly replicas: number;
  /** S10's length. */
  readonly soakMs: number;
  readonly seed: number;
}

export interface Criterion {
  readonly name: string;
  readonly pass: boolean;
  readonly detail: string;
}

export function criterion(name: string, pass: boolean, detail: string): Criterion {
  return { name, pass, detail };
}

/** A criterion that holds when `violations` is empty. */
export function noViolations(name: string, violations: readonly string[], okDetail: string): Criterion {
  return { name, pass: violations.length === 0, detail: violations.length === 0 ? okDetail : violations.join('; ') };
}

export type Extra = Record<string, number | string | boolean | null>;

/** What a scenario's faulted run hands back to the runner. */
export interface FaultedRun {
  readonly records: RequestRecord[];
  /** The scenario's own criteria (the runner adds the common ones). */
  readonly criteria: Criterion[];
  /** Detection and recovery are measured from this fault; none for fault-free scenarios. */
  readonly faultAtMs?: number;
  /** Where the stall after the fault is searched to (the next fault or heal); the run's end when absent. */
  readonly recoveryWindowEndMs?: number;
  /** Overrides the Status-based detection (e.g. a takeover seen on the standby). */
  readonly detectionMs?: number | null;
  readonly extra?: Extra;
}

export interface ScenarioContext {
  readonly env: ChaosEnv;
  readonly cluster: ChaosCluster;
  readonly faults: Faults;
  readonly observer: Observer;
  readonly timeline: Timeline;
  readonly requests: readonly RequestSpec[];
  /** Lane -> its tokens from the in-process oracle (oracle.ts); the fault-free cluster run's for a lane without one. */
  readonly reference: ReadonlyMap<number, readonly number[]>;
  /** Plan epoch when the faulted run began. */
  readonly epochBefore: number;
  /** Inter-token latency of the fault-free run. */
  readonly referenceLatency: LatencySummary;
  /** When the reference run ran (for baselines such as memory). */
  readonly referenceWindowMs: { readonly fromMs: number; readonly toMs: number };
  /** Each node's link byte counters over the reference run (link-meter.ts), sampled every 250 ms. */
  readonly referenceLinks: ReadonlyMap<string, readonly LinkSample[]>;
  /** A client over every coordinator, with the scenario's policy. */
  workload(): Workload;
}

export interface Scenario {
  readonly id: ScenarioId;
  readonly title: string;
  /** FAULTS.md's "passes when". */
  readonly passWhen: string;
  /**
   * `secure`: certificates, API keys, etcd RBAC and audit logs (cluster.ts), with `clientKeys`
   * client API keys (default 1). Without it the cluster is plaintext, as the fault scenarios have
   * always run, so their figures stay comparable run to run.
   */
  readonly topology: {
    readonly workers: number;
    readonly coordinators: number;
    readonly secure?: boolean;
    readonly clientKeys?: number;
    /** Every link between nodes (and the client's) crosses a fault proxy in the harness (fault-proxy.ts). */
    readonly proxied?: boolean;
    /** Every node's veth sends one MTU packet per skb (gso_max_segs 1), for packet-level faults. */
    readonly singlePacketSkbs?: boolean;
  };
  /** Added to every coordinator's command line (S12's admission limits). */
  readonly coordinatorArgs?: readonly string[];
  /** 'experts': the Mixtral model with its experts spread over the workers (--placement experts). */
  readonly placement?: 'layers' | 'experts';
  readonly client: Omit<ClientPolicy, 'deadlineMs'> & { readonly deadlineMs?: number };
  /** false when requests may legitimately fail (only completed ones are compared). */
  readonly allMustComplete: boolean;
  /** Why this machine cannot run it, or undefined. */
  unsupported(caps: Capabilities): string | undefined;
  requests(env: ChaosEnv): RequestSpec[];
  run(ctx: ScenarioContext): Promise<FaultedRun>;
}

export const DEFAULT_STREAMS = 16;
export const DEFAULT_NEW_TOKENS = 64;
