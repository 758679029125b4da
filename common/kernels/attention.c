/*
 * Attention over the KV caches in place (attention.h), tiled for long prompts and exact for any
 * tiling. A work unit is one sequence, one KV head and a tile of up to 16 queries (query heads of
 * that KV head x consecutive new tokens), one query per vector lane: every key the tile needs is
 * loaded once for 16 queries. Per query the arithmetic does not depend on the tile, the batch or
 * how many tokens the call has:
 *   score(s) = (q . k_s, one multiply-add per d in order d = 0 .. D-1) * scale, in its own lane;
 *   softmax over the query's visible keys only, in slot (= position) order: the maximum, then
 *   exp(score - max) (a polynomial exp within about 2 ulp of expf, the same in every lane)
 *   summed in slot order: two passes, no online rescaling;
 *   context = sum over visible keys in slot order of (e_s / sum) v_s.
 * So a token's context is bit-identical whether its sequence is prefilled in one call, decoded
 * token by token, batched with others or replayed (the engine's invariance tests check it). Keys
 * a query cannot see (later tokens of the same call, positions out of the sliding window) are
 * never summed, so causal prefill costs half of the full score matrix. A tile of 4 or 8 queries
 * (a decode step) runs at that lane width, with the same per-lane operations.
 * Float32 throughout, as the ONNX attention graph and transformers compute it: rotary
 * x cos + rotate_half(x) sin, scores q.k / sqrt(D), softmax with the maximum subtracted.
 */
#include "attention.h"
#include "linear.h"
#include <math.h>
#include <string.h>

typedef float vf16 __attribute__((vector_size(64)));
typedef int vi16 __attribute__((vector_size(64)));

#pragma GCC diagnostic ignored "-Wpsabi"
typedef float vf4 __attribute__((vector_size(16)));
typedef int vi4 __attribute__((vector_size(16)));
typedef float vf8 __attribute__((vector_size(32)));
typedef int vi8 __attribute__((vector_size(32)));

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
 * The unit at lane widths 16, 8 and 4 for each instruction set, picked as the linear kernels
 * pick theirs (linear_isa: the widest the CPU has, or BORA_KERNELS_ISA). Every width of one
 * instruction set uses the same operations per lane (multiply-adds fused wherever the set has
 * them), so a query's context does not depend on the width its tile ran at.
 */
#pragma GCC push_options
#pragma GCC target("avx512f,fma")
#define W 16
#define VF vf16
#define VI vi16
#define SELECT select16_avx512
#define EXP exp16_avx512
#define UNIT unit16_avx512
#include "attention-unit.h"
#define W 8
#define VF vf8
#define VI vi8
#define SELECT select8_avx512
#define EXP exp8_avx512
#define UNIT unit8_avx512
#include "attention-unit.h"
#define W 4
#define VF vf4
#define VI vi4
#define SELECT select4_avx512
#define EXP exp4_avx512
#define UNIT unit4_avx512
#include "attention-unit.h"
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define W 16
#define VF vf16
#define VI vi16
#define SELECT select16_avx2
#define EXP exp16_avx2
#define UNIT unit16_avx2
#include "attention-unit.h"
#define W 8
#define VF vf8
#define VI vi8
#define SELECT select8_avx2
#define EXP exp8_avx2
#define UNIT unit8_avx2
#include "attention-unit.h"
#define W 4
#define VF vf4
#define VI vi4
#define SELECT select4_avx2
#define EXP exp4_avx2
#define UNIT unit4_avx2
#include "attention-unit.h"
#pragma GCC pop_options

#define W 16
#define VF vf16
#define VI vi16
#define SELECT select16_generic
#define EXP exp16_generic
#define UNIT unit16_generic
#include "attention-unit.h"
#define W 8
#define VF vf8
#define VI vi8
#define SELECT select8_generic
#define EXP exp8_generic
#define UNIT unit8_generic
#include "attention-unit.h"
#define W 4
#define VF vf4
#define VI vi4
#define SELECT select4_generic
#define EXP exp4_generic
#define UNIT unit4_generic
#include "attention-unit.h"

typedef void (*unit_fn)(const struct attention_job *, long, long, long, float *);

/* [isa][width 16, 8, 4] */
static const unit_fn units[3][3] = {
    {unit16_avx512, unit8_avx512, unit4_avx512},
    {unit16_avx2, unit8_avx2, unit4_avx2},
    {unit16_generic, unit8_generic, unit4_generic},
};

static int isa_index(void) {
  const char *isa = linear_isa();
  return strcmp(isa, "avx512") == 0 ? 0 : strcmp(isa, "avx2") == 0 ? 1 : 2;
}

/* One tile of up to 16 queries, at the narrowest lane width that holds them (decode: a few). */
static void attention_unit(const struct attention_job *j, long b, long h, long j0, float *scratch) {
  const long n = j->rows[b].count * groups(j) - j0;
  static int isa = -1;
  if (isa < 0) isa = isa_index();
  units[isa][n <= 4 ? 2 : n <= 8 ? 1 : 0](j, b, h, j0, scratch);
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
