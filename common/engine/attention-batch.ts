/**
 * Inputs shared by every layer of one forward call: the sequences' caches, rotary cos/sin tables
 * for the new tokens and (built on first use, by the onnxruntime graphs only) the additive
 * attention mask over [cached slots | new tokens], for a batch of sequences with different cache
 * lengths and different numbers of new tokens (padded to the longest). The native attention
 * reads the caches in place and needs no mask: it sees the same keys from their positions.
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
  readonly rows: readonly BatchRow[];
  readonly batchSize: number; // B
  readonly paddedTokens: number; // T
  readonly paddedSlots: number; // P
  readonly cos: Float32Array; // (B, T, D)
  readonly sin: Float32Array; // (B, T, D)
  /** Built on first read from the caches as they were when the batch was built. */
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
  const T = Math.max(...rows.map((r) => r.tokenCount));
  const P = Math.max(...rows.map((r) => r.cache.length));
  const cos = new Float32Array(B * T * D);
  const sin = new Float32Array(B * T * D);
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
    }
  });
  // The mask depends on the caches' slots now, before the call commits its tokens.
  const slotPositions = rows.map(({ cache }) => Int32Array.from({ length: cache.length }, (_, s) => cache.positionAt(s)));
  const nextPositions = rows.map(({ cache }) => cache.nextPosition);
  let mask: Float32Array | undefined;
  return {
    rows,
    batchSize: B,
    paddedTokens: T,
    paddedSlots: P,
    cos,
    sin,
    get mask(): Float32Array {
      mask ??= attentionMask(c, rows, slotPositions, nextPositions, T, P);
      return mask;
    },
  };
}

/** The additive mask (B, 1, G*T, P+T): 0 where a query sees a key, MASKED elsewhere. */
function attentionMask(c: ModelConfig, rows: readonly BatchRow[], slotPositions: readonly Int32Array[], nextPositions: readonly number[], T: number, P: number): Float32Array {
  const G = c.numHeads / c.numKvHeads;
  const S = P + T;
  const window = c.slidingWindow ?? Infinity;
  const mask = new Float32Array(rows.length * G * T * S).fill(MASKED);
  rows.forEach(({ tokenCount }, b) => {
    for (let t = 0; t < tokenCount; t++) {
      const position = nextPositions[b] + t;
      // One mask row per query, repeated for each of the G query heads sharing a KV head.
      const row = new Float32Array(S).fill(MASKED);
      slotPositions[b].forEach((slotPosition, slot) => {
        const distance = position - slotPosition;
        if (distance >= 0 && distance < window) row[slot] = 0;
      });
      for (let s = 0; s <= t; s++) if (t - s < window) row[P + s] = 0;
      for (let g = 0; g < G; g++) mask.set(row, ((b * G + g) * T + t) * S);
    }
  });
  return mask;
}
