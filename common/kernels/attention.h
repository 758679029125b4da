#ifndef BORA_ATTENTION_H
#define BORA_ATTENTION_H

/*
 * Attention between the projections for a few new tokens per sequence (decode), with the same
 * inputs and outputs as the attention-core ONNX graph (common/engine/layer-graphs.ts):
 *   qkv   (B, T, (A + 2K) D)   q, k, v projections of the new tokens
 *   cos, sin (B, T, D)         rotary tables of their positions
 *   mask  (B, 1, G T, P + T)   additive: 0 visible, a large negative value hidden (row g T + t)
 *   past_k, past_v (B, K, P, D) cached keys (after rotary) and values
 * -> context (B, T, A D), new_k / new_v (B, K, T, D) (keys after rotary).
 * Query head a uses KV head a / G (G = A / K), as Mistral's grouped-query attention.
 */
struct attention_job {
  const float *qkv, *cos, *sin, *mask, *past_k, *past_v;
  float *context, *new_k, *new_v;
  long B, T, P, A, K, D;
  float scale; /* 1 / sqrt(D) */
};

/* First: the new tokens' keys (after rotary) and values into new_k / new_v. */
void attention_prepare(const struct attention_job *job);

/* Then: the context of (sequence, new token, query head) units [u0, u1) of B x T x A, unit
 * (b, t, a) = (b T + t) A + a. Thread-safe for disjoint ranges. */
void attention_heads(const struct attention_job *job, long u0, long u1);

#endif
