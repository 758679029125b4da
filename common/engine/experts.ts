/**
 * Where a Mixtral layer's experts run. The stage that owns a layer computes attention and the
 * router, then hands each expert its tokens through an ExpertBackend: LocalExperts runs them in
 * this process; the cluster supplies a backend that sends them to the workers holding them.
 */
import { InternalError } from '../errors';
import type { WeightSource } from '../model/weight-source';
import type { ComputeSettings } from './compute-settings';
import { createStageCompute } from './create-stage-compute';
import type { MlpCompute, StageCompute } from './layer-compute';

/** The tokens one expert must process: x is (tokens, H). */
export interface ExpertCall {
  readonly expert: number;
  readonly x: Float32Array;
  readonly tokens: number;
}

export interface ExpertBackend {
  /** Runs each call's expert of `layer` on its tokens; returns one (tokens, H) output per call. */
  run(layer: number, calls: readonly ExpertCall[]): Promise<Float32Array[]>;
}

export const expertKey = (layer: number, expert: number): string => `${layer}:${expert}`;

export class LocalExperts implements ExpertBackend {
  private constructor(
    private readonly compute: StageCompute,
    private readonly mlps: Map<string, MlpCompute>,
  ) {}

  /** Loads the listed experts: `experts(layer)` gives the expert ids to hold for each layer. */
  static async load(
    ckpt: WeightSource,
    layers: readonly number[],
    experts: (layer: number) => readonly number[],
    settings: ComputeSettings,
  ): Promise<LocalExperts> {
    const compute = createStageCompute(settings);
    const mlps = new Map<string, MlpCompute>();
    for (const layer of layers) {
      for (const expert of experts(layer)) mlps.set(expertKey(layer, expert), await compute.expert(ckpt, layer, expert));
    }
    return new LocalExperts(compute, mlps);
  }

  holds(layer: number, expert: number): boolean {
    return this.mlps.has(expertKey(layer, expert));
  }

  async run(layer: number, calls: readonly ExpertCall[]): Promise<Float32Array[]> {
    const outputs: Float32Array[] = [];
    for (const call of calls) {
      const mlp = this.mlps.get(expertKey(layer, call.expert));
      if (mlp === undefined) throw new InternalError(`expert ${call.expert} of layer ${layer} is not loaded here`);
      outputs.push(await mlp.run(call.x, call.tokens));
    }
    return outputs;
  }

  async close(): Promise<void> {
    for (const mlp of this.mlps.values()) await mlp.close();
    this.mlps.clear();
    await this.compute.close();
  }
}
