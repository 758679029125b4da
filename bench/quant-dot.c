/*
 * The measurement behind the quantized kernels' design (docs/benchmarks.md): batch-1 GEMV over a
 * Q8_0 matrix, one thread, two ways.
 *   widen: the weights widened to float32 in registers (exact), FMA with float32 activations
 *          (what common/kernels/quant.c does);
 *   int8:  the activations quantized per 32-block to int8 (llama.cpp's q8 activations), integer
 *          dot products with AVX-512 VNNI (vpdpbusd, 256-bit), one float FMA per block.
 * Both are batch-invariant by construction; the int8 one adds the activations' quantization
 * error. Build and run: cc -O3 -march=native bench/quant-dot.c -o /tmp/quant-dot && /tmp/quant-dot
 */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <math.h>

#define N 4096
#define K 4096
#define NB (K / 32)

typedef struct { unsigned short d; signed char q[32]; } __attribute__((packed)) block;

static float h2f(unsigned short h) { return _cvtsh_ss(h); }

static double cpu_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void widen(const block *w, const float *x, float *out) {
  for (int n = 0; n < N; n++) {
    __m512 acc = _mm512_setzero_ps();
    const block *row = w + (long)n * NB;
    for (int b = 0; b < NB; b++) {
      const __m512 d = _mm512_set1_ps(h2f(row[b].d));
      const __m128i q0 = _mm_loadu_si128((const __m128i *)row[b].q), q1 = _mm_loadu_si128((const __m128i *)(row[b].q + 16));
      acc = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q0)), d), _mm512_loadu_ps(x + 32 * b), acc);
      acc = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q1)), d), _mm512_loadu_ps(x + 32 * b + 16), acc);
    }
    out[n] = _mm512_reduce_add_ps(acc);
  }
}

static void int8(const block *w, const float *x, float *out) {
  /* Activations to q8 per block (part of the call, as it would be per row). */
  static signed char xq[K];
  static float xd[NB];
  for (int b = 0; b < NB; b++) {
    float amax = 0;
    for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(x[32 * b + i]));
    const float d = amax / 127, id = d ? 1 / d : 0;
    xd[b] = d;
    for (int i = 0; i < 32; i++) xq[32 * b + i] = (signed char)roundf(x[32 * b + i] * id);
  }
  for (int n = 0; n < N; n++) {
    __m256 acc = _mm256_setzero_ps();
    const block *row = w + (long)n * NB;
    for (int b = 0; b < NB; b++) {
      const __m256i q = _mm256_loadu_si256((const __m256i *)row[b].q), y = _mm256_loadu_si256((const __m256i *)(xq + 32 * b));
      const __m256i ax = _mm256_sign_epi8(q, q), sy = _mm256_sign_epi8(y, q);
      const __m256i dot = _mm256_dpbusd_epi32(_mm256_setzero_si256(), ax, sy);
      acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(h2f(row[b].d) * xd[b]), acc);
    }
    const __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    out[n] = s[0] + s[1] + s[2] + s[3];
  }
}

int main(void) {
  block *w = malloc(sizeof(block) * (size_t)N * NB);
  float *x = malloc(sizeof(float) * K), *o1 = malloc(sizeof(float) * N), *o2 = malloc(sizeof(float) * N);
  unsigned s = 1;
  for (long i = 0; i < (long)N * NB; i++) {
    w[i].d = _cvtss_sh(0.001f * (1 + (i % 7)), 0);
    for (int j = 0; j < 32; j++) w[i].q[j] = (signed char)((s = s * 1664525 + 1013904223) >> 24);
  }
  for (int k = 0; k < K; k++) x[k] = (float)((s = s * 1664525 + 1013904223) >> 8) / (1 << 24) - 0.5f;
  double best[2] = {1e9, 1e9};
  for (int rep = 0; rep < 20; rep++) {
    double t = cpu_ms();
    widen(w, x, o1);
    double u = cpu_ms();
    int8(w, x, o2);
    double v = cpu_ms();
    if (u - t < best[0]) best[0] = u - t;
    if (v - u < best[1]) best[1] = v - u;
  }
  double err = 0, mag = 0;
  for (int n = 0; n < N; n++) {
    err = fmax(err, fabs(o1[n] - o2[n]));
    mag = fmax(mag, fabs(o1[n]));
  }
  const double mb = sizeof(block) * (double)N * NB / 1e6;
  printf("Q8_0 %dx%d GEMV, 1 thread, best of 20 (thread CPU time):\n", N, K);
  printf("  widen to f32: %.2f ms (%.1f GB/s of weights)\n", best[0], mb / best[0]);
  printf("  int8 VNNI:    %.2f ms (%.1f GB/s of weights)   ratio widen/int8 %.2f\n", best[1], mb / best[1], best[0] / best[1]);
  printf("  max |widen - int8| / max |out| = %.2e (the activations' quantization)\n", err / mag);
  return 0;
}
