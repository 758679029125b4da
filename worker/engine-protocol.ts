/** Messages between a worker's main thread and its engine thread. */
import type { ExpertCall } from '../common/engine/experts';
import type { ComputeSettings } from '../common/engine/compute-settings';
import type { CacheSnapshot } from '../common/engine/kv-cache';
import type { StageInput } from '../common/engine/stage-engine';
import type { LayerRange } from '../common/ids';
import type { ModelConfig } from '../common/model/config';
import type { ThreadError } from '../common/pool/thread-errors';
import type { TransportSpec } from '../common/security/node-security';
import type { ExpertDispatchStats } from './expert-stats';
import type { ExpertTable } from './remote-experts';
import type { ForwardContext, StageResult } from './prefix-stage';
import type { StageStats } from './stage-backend';

/** What an engine thread starts with (its workerData). Certificates go as file names: the thread
 * builds its own reloader, since a CertificateProvider cannot cross threads. */
export interface EngineThreadData {
  readonly transport: TransportSpec;
}

/** Where the engine thread reads weights: a directory it can see, or the coordinator. */
/** `dir`: a checkpoint directory or a GGUF file (open-model.ts). */
/** The registered version's tensor digests a remote source checks each fetched tensor against (worker/version-check.ts). */
export interface ExpectedDigests {
  /** NAME@VERSION, for the error message. */
  readonly ref: string;
  readonly tensors: Readonly<Record<string, string>>;
}

export type WeightSourceSpec =
  | { readonly kind: 'local'; readonly dir: string }
  | { readonly kind: 'remote'; readonly address: string; readonly modelId: string; readonly expectedDigests?: ExpectedDigests };

export interface ExpertHolding {
  readonly layer: number;
  readonly experts: readonly number[];
}

/**
 * Experts spread over workers: the stage runs its layers' experts through RemoteExperts instead of
 * loading them. `self` is this worker's address in the table and the handle of its expert set on
 * the engine thread: experts held here run in-thread, without gRPC.
 */
export interface RemoteExpertsSpec extends ExpertTable {
  readonly self?: { readonly address: string; readonly experts: number };
  /** Deadline of one RunExperts call. */
  readonly deadlineMs?: number;
}

/** One sequence's cache for the layers from `layerStart` on (absolute), as a hand-over moves it. */
export interface SequenceSnapshot {
  readonly id: string;
  readonly layerStart: number;
  readonly snapshot: CacheSnapshot;
}

export type EngineRequest =
  /** `prefixCacheBytes`: the stage's prefix cache budget (prefix-stage.ts); 0 or absent: none. */
  | { readonly op: 'loadStage'; readonly source: WeightSourceSpec; readonly range: LayerRange; readonly compute: ComputeSettings; readonly experts?: RemoteExpertsSpec; readonly prefixCacheBytes?: number }
  /** A new plan for a stage loaded with `experts`: its epoch and placement from the next forward on. */
  | { readonly op: 'setExperts'; readonly stage: number; readonly experts: RemoteExpertsSpec }
  | { readonly op: 'loadExperts'; readonly source: WeightSourceSpec; readonly holdings: readonly ExpertHolding[]; readonly compute: ComputeSettings }
  | { readonly op: 'forward'; readonly stage: number; readonly input: StageInput; readonly context?: ForwardContext }
  | { readonly op: 'release'; readonly stage: number; readonly ids: readonly string[] | 'all' }
  | { readonly op: 'positions'; readonly stage: number; readonly ids: readonly string[] }
  /** A planned hand-over: copy out, install, or keep only some sequences' caches. */
  | { readonly op: 'snapshotKv'; readonly stage: number; readonly ids: readonly string[]; readonly layers: LayerRange }
  | { readonly op: 'restoreKv'; readonly stage: number; readonly entries: readonly SequenceSnapshot[] }
  | { readonly op: 'retain'; readonly stage: number; readonly ids: readonly string[] }
  | { readonly op: 'runExperts'; readonly experts: number; readonly layer: number; readonly calls: readonly ExpertCall[] }
  | { readonly op: 'close'; readonly handle: number };

export type EngineReplyValue =
  | { readonly op: 'loadStage'; readonly stage: number; readonly config: ModelConfig; readonly loadSeconds: number }
  | { readonly op: 'loadExperts'; readonly experts: number; readonly config: ModelConfig; readonly loadSeconds: number }
  | { readonly op: 'setExperts' }
  | { readonly op: 'forward'; readonly output: StageResult; readonly stats: StageStats; readonly experts?: ExpertDispatchStats }
  | { readonly op: 'release'; readonly released: number; readonly stats: StageStats }
  | { readonly op: 'positions'; readonly positions: (number | undefined)[] }
  | { readonly op: 'snapshotKv'; readonly entries: SequenceSnapshot[] }
  | { readonly op: 'restoreKv'; readonly stats: StageStats }
  | { readonly op: 'retain'; readonly released: number; readonly stats: StageStats }
  | { readonly op: 'runExperts'; readonly outputs: Float32Array[] }
  | { readonly op: 'close' };

/**
 * Sent by the thread while it loads a stage (no reply id): layers loaded of the stage's total,
 * and the bytes of weights read from the source so far.
 */
export interface LoadProgress {
  readonly layersLoaded: number;
  readonly layersTotal: number;
  readonly bytesLoaded: number;
  /** Set on the last report of a load. */
  readonly done: boolean;
}
export type EngineProgressMessage = { readonly progress: LoadProgress };

export type EngineReply = { readonly id: number; readonly ok: true; readonly value: EngineReplyValue } | { readonly id: number; readonly ok: false; readonly error: ThreadError };
