/**
 * Where a Mixtral layer's experts run. The stage that owns a layer computes attention and the
 * router, then hands each expert its tokens through an ExpertBackend: LocalExperts runs them in
 * this process; the cluster supplies a backend that sends them to the workers holding them.
 */
import type * as ort from 'onnxruntime-node';
import { InternalError } from '../errors';
import type { WeightSource } from '../model/weight-source';
import { createSession, f32Tensor, runF32, type SessionSettings } from './ort-session';
import { EXPERT_IO, expertGraph } from './layer-graphs';
import { readExpertWeights } from './layer-weights';

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
    private readonly hiddenSize: number,
    private readonly sessions: Map<string, ort.InferenceSession>,
  ) {}

  /** Loads the listed experts: `experts(layer)` gives the expert ids to hold for each layer. */
  static async load(
    ckpt: WeightSource,
    layers: readonly number[],
    experts: (layer: number) => readonly number[],
    settings: SessionSettings,
  ): Promise<LocalExperts> {
    const sessions = new Map<string, ort.InferenceSession>();
    for (const layer of layers) {
      for (const expert of experts(layer)) {
        const weights = await readExpertWeights(ckpt, layer, expert);
        sessions.set(expertKey(layer, expert), await createSession(expertGraph(ckpt.config, weights), settings));
      }
    }
    return new LocalExperts(ckpt.config.hiddenSize, sessions);
  }

  holds(layer: number, expert: number): boolean {
    return this.sessions.has(expertKey(layer, expert));
  }

  async run(layer: number, calls: readonly ExpertCall[]): Promise<Float32Array[]> {
    const outputs: Float32Array[] = [];
    for (const call of calls) {
      const session = this.sessions.get(expertKey(layer, call.expert));
      if (session === undefined) throw new InternalError(`expert ${call.expert} of layer ${layer} is not loaded here`);
      const out = await runF32(session, { [EXPERT_IO.input]: f32Tensor(call.x, [call.tokens, this.hiddenSize]) });
      outputs.push(out[EXPERT_IO.output]);
    }
    return outputs;
  }

  async close(): Promise<void> {
    for (const session of this.sessions.values()) await session.release();
    this.sessions.clear();
  }
}
