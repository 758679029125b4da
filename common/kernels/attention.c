/*
 * Attention over the KV caches in place (attention.h), tiled for long prompts and exact for any
 * tiling. A work unit is one sequence, one KV head and a tile of up to 16 queries (query heads of
 * that KV head x consecutive new tokens), one query per vector lane: every key the tile needs is
 * loaded once for 16 queries. Per query the arithmetic does not depend on the tile, the batch or
 * how many tokens the call has:
 *   score(s) = (q . k_s, one multiply-add per d in order d = 0 .. D-1) * scale, in its own lane;
 *   softmax over the query's visible keys only, in slot (= position) order: the maximum, then
 *   exp(score - max) summed in slot order, two passes, no rescaling;
 *   context = sum over visible keys in slot order of (e_s / sum) v_s.
 * So a token's context is bit-identical whether its sequence is prefilled in one call, decoded
 * token by token, batched with others or replayed (the engine's invariance tests check it). Keys
 * a query cannot see (later tokens of the same call, positions out of the sliding window) are
 * never summed, so causal prefill costs half of the full score matrix.
 * Float32 throughout, as the ONNX attention graph and transformers compute it: rotary
 * x cos + rotate_half(x) sin, scores q.k / sqrt(D), softmax with the maximum subtracted.
 */
#include "attention.h"
#include <math.h>
#include <string.h>

typedef float vf16 __attribute__((vector_size(64)));
typedef float uvf16 __attribute__((vector_size(64), aligned(4)));

/* x (D) rotated into out: HF's rotate-half convention. */
static void rotary(const float *x, const float *cos, const float *sin, long D, float *out) {
  const long half = D / 2;
  for (long i = 0; i < half; i++) {
    out[i] = x[i] * cos[i] + (-x[i + half]) * sin[i];
    out[i + half] = x[i + half] * cos[i + half] + x[i] * sin[i + half];
  }
}

static long groups(const struct attention_job *j) { return j->A / j->K; }

void attention_append(const struct attention_job *j) {
  const long T = j->T, A = j->A, K = j->K, D = j->D;
  const long width = (A + 2 * K) * D;
  for (long b = 0; b < j->B; b++) {
    const struct attention_row *r = &j->rows[b];
    for (long t = 0; t < r->count; t++) {
      const float *row = j->qkv + (b * T + t) * width;
      const float *cos = j->cos + (b * T + t) * D, *sin = j->sin + (b * T + t) * D;
      for (long h = 0; h < K; h++) {
        const long slot = h * r->capacity + r->length + t;
        rotary(row + A * D + h * D, cos, sin, D, r->k + slot * D);
        memcpy(r->v + slot * D, row + A * D + K * D + h * D, sizeof(float) * (size_t)D);
      }
    }
    /* Padded query rows get a zero context (the engine discards them). */
    if (r->count < T) memset(j->context + (b * T + r->count) * A * D, 0, sizeof(float) * (size_t)((T - r->count) * A * D));
  }
}

static long tiles(const struct attention_job *j, long b) { return (j->rows[b].count * groups(j) + ATTENTION_LANES - 1) / ATTENTION_LANES; }

long attention_units(const struct attention_job *j) {
  long units = 0;
  for (long b = 0; b < j->B; b++) units += j->K * tiles(j, b);
  return units;
}

long attention_max_keys(const struct attention_job *j) {
  long most = 1;
  for (long b = 0; b < j->B; b++)
    if (j->rows[b].length + j->rows[b].count > most) most = j->rows[b].length + j->rows[b].count;
  return most;
}

long attention_scratch_floats(const struct attention_job *j) {
  return (attention_max_keys(j) + 2 * j->D) * ATTENTION_LANES;
}

/* Position of slot s of a row during this call: cached slots, then the new tokens. */
static long slot_position(const struct attention_row *r, long s) { return s < r->length ? r->positions[s] : r->start + (s - r->length); }

/*
 * One unit: queries j0 .. j0 + n - 1 of (sequence b, KV head h), query j being new token j / G
 * and query head h G + j % G. scratch: qT (D, LANES), scores (keys, LANES), out (LANES, D).
 */
__attribute__((target_clones("avx512f", "avx2,fma", "default"))) static void attention_unit(const struct attention_job *j, long b, long h, long j0, float *scratch) {
  const long T = j->T, A = j->A, K = j->K, D = j->D, G = groups(j);
  const long width = (A + 2 * K) * D;
  const struct attention_row *r = &j->rows[b];
  long n = r->count * G - j0;
  if (n > ATTENTION_LANES) n = ATTENTION_LANES;
  float *qT = scratch;                              /* (D, LANES) */
  float *out = qT + D * ATTENTION_LANES;            /* (LANES, D) */
  float *scores = out + D * ATTENTION_LANES;        /* (keys, LANES), from slot s_lo */
  long lo[ATTENTION_LANES] = {0}, hi[ATTENTION_LANES] = {0};
  float rotated[D];

  memset(qT, 0, sizeof(float) * (size_t)(D * ATTENTION_LANES));
  for (long l = 0; l < n; l++) {
    const long t = (j0 + l) / G, a = h * G + (j0 + l) % G;
    rotary(j->qkv + (b * T + t) * width + a * D, j->cos + (b * T + t) * D, j->sin + (b * T + t) * D, D, rotated);
    for (long d = 0; d < D; d++) qT[d * ATTENTION_LANES + l] = rotated[d];
    /* Visible slots [lo, hi): positions ascend with the slot, so the window is a suffix. */
    const long position = r->start + t;
    hi[l] = r->length + t + 1;
    lo[l] = 0;
    if (j->window > 0)
      while (lo[l] < hi[l] && position - slot_position(r, lo[l]) >= j->window) lo[l]++;
  }
  long s_lo = lo[0], s_hi = hi[0];
  for (long l = 1; l < n; l++) {
    if (lo[l] < s_lo) s_lo = lo[l];
    if (hi[l] > s_hi) s_hi = hi[l];
  }

  /* Raw scores of every key in [s_lo, s_hi) for all lanes, four keys at a time. */
  const float *keys = r->k + h * r->capacity * D;
  const vf16 *q = (const vf16 *)qT;
  vf16 *sv = (vf16 *)scores;
  long s = s_lo;
  for (; s + 4 <= s_hi; s += 4) {
    const float *k0 = keys + s * D, *k1 = k0 + D, *k2 = k1 + D, *k3 = k2 + D;
    vf16 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    for (long d = 0; d < D; d++) {
      a0 += q[d] * k0[d];
      a1 += q[d] * k1[d];
      a2 += q[d] * k2[d];
      a3 += q[d] * k3[d];
    }
    sv[s - s_lo] = a0 * j->scale;
    sv[s - s_lo + 1] = a1 * j->scale;
    sv[s - s_lo + 2] = a2 * j->scale;
    sv[s - s_lo + 3] = a3 * j->scale;
  }
  for (; s < s_hi; s++) {
    const float *k0 = keys + s * D;
    vf16 a0 = {0};
    for (long d = 0; d < D; d++) a0 += q[d] * k0[d];
    sv[s - s_lo] = a0 * j->scale;
  }

  /* Per lane: softmax weights over its own visible keys (others get 0). */
  float sum[ATTENTION_LANES];
  for (long l = 0; l < n; l++) {
    float max = -INFINITY;
    for (long s2 = lo[l]; s2 < hi[l]; s2++)
      if (scores[(s2 - s_lo) * ATTENTION_LANES + l] > max) max = scores[(s2 - s_lo) * ATTENTION_LANES + l];
    float total = 0.0f;
    for (long s2 = s_lo; s2 < s_hi; s2++) {
      float *e = &scores[(s2 - s_lo) * ATTENTION_LANES + l];
      if (s2 < lo[l] || s2 >= hi[l]) {
        *e = 0.0f;
        continue;
      }
      *e = expf(*e - max);
      total += *e;
    }
    sum[l] = total;
  }

  /* context = sum of p v in slot order; each value row is loaded once for all lanes. */
  memset(out, 0, sizeof(float) * (size_t)(ATTENTION_LANES * D));
  const float *values = r->v + h * r->capacity * D;
  for (long s2 = s_lo; s2 < s_hi; s2++) {
    const float *v = values + s2 * D;
    const float *e = &scores[(s2 - s_lo) * ATTENTION_LANES];
    for (long l = 0; l < n; l++) {
      const float p = e[l] / sum[l];
      if (p == 0.0f) continue; /* hidden, or a weight that underflows */
      float *o = out + l * D;
      for (long i = 0; i < D; i++) o[i] += p * v[i];
    }
  }
  for (long l = 0; l < n; l++) {
    const long t = (j0 + l) / G, a = h * G + (j0 + l) % G;
    memcpy(j->context + (b * T + t) * A * D + a * D, out + l * D, sizeof(float) * (size_t)D);
  }
}

void attention_part(const struct attention_job *j, int part, int parts, float *scratch) {
  long u = 0;
  for (long b = 0; b < j->B; b++) {
    const long count = tiles(j, b);
    for (long h = 0; h < j->K; h++)
      for (long tile = 0; tile < count; tile++, u++)
        if (u % parts == part) attention_unit(j, b, h, tile * ATTENTION_LANES, scratch);
  }
}
