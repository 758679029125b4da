/*
 * Decode-time attention (attention.h): a handful of new tokens per sequence against its cache.
 * Small enough that calling onnxruntime for it costs more than computing it (16 session runs
 * per token on the 1B model), so the native path does it here. Every step is float32 as the ONNX
 * graph computes it: rotary x cos + rotate_half(x) sin, scores q.k / sqrt(D) + mask, softmax
 * with the row maximum subtracted, then the probability-weighted sum of values.
 */
#include "attention.h"
#include <math.h>
#include <stdlib.h>

/* x (D) rotated in place into out: HF's rotate-half convention. */
static void rotary(const float *x, const float *cos, const float *sin, long D, float *out) {
  const long half = D / 2;
  for (long i = 0; i < half; i++) {
    out[i] = x[i] * cos[i] + (-x[i + half]) * sin[i];
    out[i + half] = x[i + half] * cos[i + half] + x[i] * sin[i + half];
  }
}

typedef float vf16 __attribute__((vector_size(64)));
typedef float uvf16 __attribute__((vector_size(64), aligned(4)));

/* a . b in 16-lane partial sums (compiled for AVX-512, AVX2 and plain x86-64, picked at load). */
__attribute__((target_clones("avx512f", "avx2,fma", "default"))) static float dot(const float *a, const float *b, long n) {
  vf16 acc = {0};
  long i = 0;
  for (; i + 16 <= n; i += 16) acc += *(const uvf16 *)(a + i) * *(const uvf16 *)(b + i);
  float s = 0.0f;
  for (int l = 0; l < 16; l++) s += acc[l];
  for (; i < n; i++) s += a[i] * b[i];
  return s;
}

/* out (n) += p * v (n). */
__attribute__((target_clones("avx512f", "avx2,fma", "default"))) static void axpy(float p, const float *v, float *out, long n) {
  for (long i = 0; i < n; i++) out[i] += p * v[i];
}

void attention_prepare(const struct attention_job *j) {
  const long B = j->B, T = j->T, A = j->A, K = j->K, D = j->D;
  const long width = (A + 2 * K) * D;
  for (long b = 0; b < B; b++)
    for (long t = 0; t < T; t++) {
      const float *row = j->qkv + (b * T + t) * width;
      const float *cos = j->cos + (b * T + t) * D, *sin = j->sin + (b * T + t) * D;
      for (long h = 0; h < K; h++) {
        float *k_out = j->new_k + ((b * K + h) * T + t) * D;
        float *v_out = j->new_v + ((b * K + h) * T + t) * D;
        rotary(row + A * D + h * D, cos, sin, D, k_out);
        for (long i = 0; i < D; i++) v_out[i] = row[A * D + K * D + h * D + i];
      }
    }
}

void attention_heads(const struct attention_job *j, long u0, long u1) {
  const long T = j->T, P = j->P, A = j->A, K = j->K, D = j->D, G = A / K, S = P + T;
  const long width = (A + 2 * K) * D;
  float *q = malloc(sizeof(float) * (size_t)D);
  float *scores = malloc(sizeof(float) * (size_t)S);
  if (q == 0 || scores == 0) {
    free(q);
    free(scores);
    return;
  }
  for (long u = u0; u < u1; u++) {
    const long b = u / (T * A), t = (u / A) % T, a = u % A;
    const long h = a / G, g = a % G;
    const float *row = j->qkv + (b * T + t) * width;
    rotary(row + a * D, j->cos + (b * T + t) * D, j->sin + (b * T + t) * D, D, q);
    const float *keys = j->past_k + (b * K + h) * P * D, *values = j->past_v + (b * K + h) * P * D;
    const float *new_keys = j->new_k + (b * K + h) * T * D, *new_values = j->new_v + (b * K + h) * T * D;
    const float *mask = j->mask + (b * G * T + g * T + t) * S;
    float max = -INFINITY;
    for (long s = 0; s < S; s++) {
      const float *key = s < P ? keys + s * D : new_keys + (s - P) * D;
      scores[s] = dot(q, key, D) * j->scale + mask[s];
      if (scores[s] > max) max = scores[s];
    }
    float sum = 0.0f;
    for (long s = 0; s < S; s++) {
      scores[s] = expf(scores[s] - max);
      sum += scores[s];
    }
    float *out = j->context + (b * T + t) * A * D + a * D;
    for (long i = 0; i < D; i++) out[i] = 0.0f;
    for (long s = 0; s < S; s++) {
      const float p = scores[s] / sum;
      if (p == 0.0f) continue; /* a hidden position (exp of the mask underflows to 0) */
      axpy(p, s < P ? values + s * D : new_values + (s - P) * D, out, D);
    }
  }
  free(q);
  free(scores);
}
