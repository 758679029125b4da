/*
 * Linear layers over block-quantized weights with integer dot products (the default quantized
 * path; quant.c's float32 widening stays as the exact path, BORA_QUANT_ACTIVATIONS=f32). As in
 * llama.cpp, each row of x is first quantized to int8 per 32-value group (quant-q8.h); then each
 * 64-value chunk of a weight row is decoded to bytes and multiplied with x's bytes by integer dot
 * products, 4 values per 32-bit lane (AVX-512 VNNI vpdpbusd; AVX2 vpmaddubsw + vpmaddwd; plain C
 * elsewhere). The integer lane sums are exact, so every instruction set gets the same integers.
 *
 * Each output (m, n) is then sum over chunks c of lane j of
 *   float(isum[c][j]) * (wscale[c][j] * xscale[c][j])   (Q4_K also: - wmin[c][j] * (xscale * xsum)[c][j])
 * accumulated in lane j of a 16-lane float vector in chunk order, and the 16 lanes are summed by a
 * fixed tree. Weight offsets (Q4_0's -8, Q6_K's -32, Q8_0's signedness) are folded into the
 * integer sums. Nothing depends on M, the tile or the thread split, so a row's result is
 * bit-identical alone or in any batch (batch- and shape-invariance); the value is the float32
 * product of the dequantized weights with x's 8-bit quantization, up to float32 rounding.
 */
#include "quant-q8.h"
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#pragma GCC diagnostic ignored "-Wpsabi"

typedef float v16f __attribute__((vector_size(64)));
typedef int v16i __attribute__((vector_size(64)));
typedef unsigned char v64u __attribute__((vector_size(64)));
typedef signed char v64s __attribute__((vector_size(64)));
typedef unsigned char v32u __attribute__((vector_size(32)));
typedef unsigned char v16u __attribute__((vector_size(16)));
typedef float v2f __attribute__((vector_size(8)));
typedef float v4f __attribute__((vector_size(16)));

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)

int quant_x8_prepare(struct quant_x8 *p, const float *x, long M, long K) {
  const long Kp = (K + 63) / 64 * 64, lanes = Kp / 4;
  p->Kp = Kp;
  p->q = aligned_alloc(64, (size_t)(M * Kp));
  p->d = aligned_alloc(64, (size_t)(M * lanes) * sizeof(float));
  p->s = aligned_alloc(64, (size_t)(M * lanes) * sizeof(int));
  p->ds = aligned_alloc(64, (size_t)(M * lanes) * sizeof(float));
  if (!p->q || !p->d || !p->s || !p->ds) {
    quant_x8_free(p);
    return 0;
  }
  for (long m = 0; m < M; m++) {
    const float *xr = x + m * K;
    signed char *q = p->q + m * Kp;
    float *d = p->d + m * lanes, *ds = p->ds + m * lanes;
    int *s = p->s + m * lanes;
    for (long g = 0; g < Kp / 32; g++) {
      if (32 * g >= K) { /* padding */
        memset(q + 32 * g, 0, 32);
        for (int l = 0; l < 8; l++) d[8 * g + l] = 0.0f, s[8 * g + l] = 0, ds[8 * g + l] = 0.0f;
        continue;
      }
      float amax = 0.0f;
      int finite = 1;
      for (int i = 0; i < 32; i++) {
        const float v = xr[32 * g + i];
        if (!isfinite(v)) finite = 0;
        else if (fabsf(v) > amax) amax = fabsf(v);
      }
      /* A NaN or infinite activation makes the group's outputs NaN, as the float path would. */
      const float dg = finite ? amax / 127.0f : NAN, id = finite && amax > 0.0f ? 1.0f / dg : 0.0f;
      for (int i = 0; i < 32; i++) {
        float r = roundf(xr[32 * g + i] * id);
        r = r > 127.0f ? 127.0f : r < -127.0f ? -127.0f : r;
        q[32 * g + i] = finite ? (signed char)r : 0;
      }
      for (int l = 0; l < 8; l++) {
        const signed char *ql = q + 32 * g + 4 * l;
        const int sum = ql[0] + ql[1] + ql[2] + ql[3];
        d[8 * g + l] = dg;
        s[8 * g + l] = sum;
        ds[8 * g + l] = dg * (float)sum;
      }
    }
  }
  return 1;
}

void quant_x8_free(struct quant_x8 *p) {
  free(p->q);
  free(p->d);
  free(p->s);
  free(p->ds);
  p->q = 0, p->d = 0, p->s = 0, p->ds = 0;
}

static inline float h2f(const unsigned char *p) {
  _Float16 h;
  memcpy(&h, p, 2);
  return (float)h;
}

static inline void store_out8(const struct quant_job *job, long m, long n, float value) {
  float *o = job->out + m * job->N + n;
  *o = job->accumulate ? *o + value : value;
}

/* Dot products of 64 weight bytes with 64 activation bytes, 4 per lane, plus init (exact). */
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")
#define S _avx512
#define QMR 4
#define QNR 8
static inline __attribute__((always_inline)) v16i dot_avx512(v16i init, v64u w, v64s x, const int sgn) {
  /* Signed weights (Q8_0): q + 128 as unsigned, and init = -128 * sum(x) (the caller's). */
  if (sgn) w ^= 0x80;
  return (v16i)_mm512_dpbusd_epi32((__m512i)init, (__m512i)w, (__m512i)x);
}
#define DOT dot_avx512
#include "quant-q8-isa.h"
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#define S _avx2
#define QMR 2
#define QNR 4
static inline __attribute__((always_inline)) __m256i dot_avx2_half(__m256i w, __m256i x, const int sgn) {
  /* Pairs of u8 * s8 sum into int16: exact while |w| <= 128 (the sign trick for signed weights;
     the unsigned types' weights are < 64). */
  const __m256i p16 = sgn ? _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w)) : _mm256_maddubs_epi16(w, x);
  return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
}
static inline __attribute__((always_inline)) v16i dot_avx2(v16i init, v64u w, v64s x, const int sgn) {
  const v32u w0 = __builtin_shufflevector(w, w, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31);
  const v32u w1 = __builtin_shufflevector(w, w, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63);
  const v64u xu = (v64u)x;
  const v32u x0 = __builtin_shufflevector(xu, xu, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31);
  const v32u x1 = __builtin_shufflevector(xu, xu, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63);
  typedef int v8i __attribute__((vector_size(32)));
  const v8i s0 = (v8i)dot_avx2_half((__m256i)w0, (__m256i)x0, sgn), s1 = (v8i)dot_avx2_half((__m256i)w1, (__m256i)x1, sgn);
  const v16i sum = __builtin_shufflevector(s0, s1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  /* With the sign trick the sum is already sum(q x) = init + sum((q + 128) x). */
  return sgn ? sum : sum + init;
}
#define DOT dot_avx2
#include "quant-q8-isa.h"
#pragma GCC pop_options

static inline __attribute__((always_inline)) v16i dot_generic(v16i init, v64u w, v64s x, const int sgn) {
  if (sgn) w ^= 0x80;
  v16i r = init;
  for (int l = 0; l < 16; l++) r[l] += w[4 * l] * x[4 * l] + w[4 * l + 1] * x[4 * l + 1] + w[4 * l + 2] * x[4 * l + 2] + w[4 * l + 3] * x[4 * l + 3];
  return r;
}
#define S _generic
#define QMR 2
#define QNR 4
#define DOT dot_generic
#include "quant-q8-isa.h"

typedef void (*rows8_fn)(const struct quant_job *, long, long);

static const rows8_fn q8_kernels[3][4] = {
    {q8_rows_q8_0_avx512, q8_rows_q4_0_avx512, q8_rows_q4_k_avx512, q8_rows_q6_k_avx512},
    {q8_rows_q8_0_avx2, q8_rows_q4_0_avx2, q8_rows_q4_k_avx2, q8_rows_q6_k_avx2},
    {q8_rows_q8_0_generic, q8_rows_q4_0_generic, q8_rows_q4_k_generic, q8_rows_q6_k_generic},
};

extern const char *linear_isa(void);

/* linear.c's choice, except that the AVX-512 kernels also need VNNI (else AVX2's are used). */
static int q8_isa_index(void) {
  static int index = -1;
  if (index < 0) {
    const char *isa = linear_isa();
    __builtin_cpu_init();
    if (strcmp(isa, "avx512") == 0) index = __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") ? 0 : 1;
    else index = strcmp(isa, "avx2") == 0 ? 1 : 2;
  }
  return index;
}

void quant_q8_rows(const struct quant_job *job, long n0, long n1) {
  if (n0 < n1) q8_kernels[q8_isa_index()][job->type](job, n0, n1);
}
