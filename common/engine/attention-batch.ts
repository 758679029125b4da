/**
 * Inputs shared by every layer of one forward call: rotary cos/sin tables for the new tokens and
 * the additive attention mask over [cached slots | new tokens], for a batch of sequences with
 * different cache lengths and different numbers of new tokens (padded to the longest).
 */
import type { ModelConfig } from '../model/config';
import { MASKED } from './layer-graphs';
import type { SequenceCache } from './kv-cache';

export interface BatchRow {
  readonly cache: SequenceCache;
  /** New tokens of this sequence in this call. */
  readonly tokenCount: number;
}

export interface AttentionBatch {
  readonly batchSize: number; // B
  readonly paddedTokens: number; // T
  readonly paddedSlots: number; // P
  readonly cos: Float32Array; // (B, T, D)
  readonly sin: Float32Array; // (B, T, D)
  readonly mask: Float32Array; // (B, 1, G*T, P+T)
}

/** 1 / theta^(2i / D) for i < D/2, rounded through float32 as transformers computes it. */
export function inverseFrequencies(c: ModelConfig): Float32Array {
  const half = c.headDim / 2;
  const out = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    const exponent = Math.fround(Math.fround(2 * i) / c.headDim);
    out[i] = Math.fround(1 / Math.fround(Math.pow(c.ropeTheta, exponent)));
  }
  return out;
}

export function buildAttentionBatch(c: ModelConfig, invFreq: Float32Array, rows: readonly BatchRow[]): AttentionBatch {
  const B = rows.length;
  const D = c.headDim;
  const G = c.numHeads / c.numKvHeads;
  const T = Math.max(...rows.map((r) => r.tokenCount));
  const P = Math.max(...rows.map((r) => r.cache.length));
  const S = P + T;
  const window = c.slidingWindow ?? Infinity;
  const cos = new Float32Array(B * T * D);
  const sin = new Float32Array(B * T * D);
  const mask = new Float32Array(B * G * T * S).fill(MASKED);
  const half = D / 2;

  rows.forEach(({ cache, tokenCount }, b) => {
    for (let t = 0; t < tokenCount; t++) {
      const position = cache.nextPosition + t;
      const base = (b * T + t) * D;
      for (let i = 0; i < half; i++) {
        const angle = Math.fround(position * invFreq[i]);
        cos[base + i] = cos[base + half + i] = Math.cos(angle);
        sin[base + i] = sin[base + half + i] = Math.sin(angle);
      }
      // One mask row per query, repeated for each of the G query heads sharing a KV head.
      const row = new Float32Array(S).fill(MASKED);
      for (let slot = 0; slot < cache.length; slot++) {
        const distance = position - cache.positionAt(slot);
        if (distance >= 0 && distance < window) row[slot] = 0;
      }
      for (let s = 0; s <= t; s++) if (t - s < window) row[P + s] = 0;
      for (let g = 0; g < G; g++) mask.set(row, ((b * G + g) * T + t) * S);
    }
  });
  return { batchSize: B, paddedTokens: T, paddedSlots: P, cos, sin, mask };
}
