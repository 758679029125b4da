/*
 * Paired micro-benchmark of the quantized kernels (docs/benchmarks.md): one (M, 4096) x (4096,
 * 4096)^T product per type, the exact float32 widening path (quant.c, x8 = NULL, what
 * BORA_QUANT_ACTIVATIONS=f32 selects) against the integer-dot path (quant-q8.c, the default, the
 * 8-bit quantization of x included in its time), alternated in one run on one thread, best of 25
 * by thread CPU time so that other processes on the machine count less. Build and run:
 *   cc -O3 -Icommon/kernels bench/quant-gemv.c common/kernels/quant.c common/kernels/quant-q8.c \
 *     common/kernels/quant-encode.c -lm -o /tmp/quant-gemv && /tmp/quant-gemv 1 && /tmp/quant-gemv 16
 * (ISA=avx2 or ISA=generic picks a narrower instantiation.)
 */
#include "quant-q8.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
const char *linear_isa(void) { return getenv("ISA") ? getenv("ISA") : "avx512"; }
static double now(void) { struct timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); return t.tv_sec * 1e3 + t.tv_nsec / 1e6; }
int main(int argc, char **argv) {
  long M = argc > 1 ? atol(argv[1]) : 1, N = 4096, K = 4096;
  float *src = malloc(N * K * 4), *x = malloc(M * K * 4), *out = malloc(M * N * 4);
  unsigned s = 1;
  for (long i = 0; i < N * K; i++) src[i] = ((s = s * 1664525 + 1013904223) >> 8) / 16777216.0f - 0.5f;
  for (long i = 0; i < M * K; i++) x[i] = ((s = s * 1664525 + 1013904223) >> 8) / 16777216.0f - 0.5f;
  const char *names[4] = {"Q8_0", "Q4_0", "Q4_K", "Q6_K"};
  for (int type = 0; type < 4; type++) {
    unsigned char *w = malloc(quant_row_bytes(type, K) * N);
    quant_quantize_rows(type, src, 0, w, K, 0, N);
    struct quant_x8 x8;
    double best[2] = {1e9, 1e9};
    for (int r = 0; r < 25; r++)
      for (int v = 0; v < 2; v++) {
        double t0 = now();
        if (v) quant_x8_prepare(&x8, x, M, K);
        struct quant_job job = {x, w, type, out, M, N, K, 0, v ? &x8 : 0};
        quant_linear_rows(&job, 0, N);
        if (v) quant_x8_free(&x8);
        double t = now() - t0;
        if (t < best[v]) best[v] = t;
      }
    double gb = quant_row_bytes(type, K) * N / 1e6;
    printf("%s M=%ld: f32 widen %.3f ms (%.1f GB/s), int8 dot %.3f ms (%.1f GB/s), %.2fx\n", names[type], M, best[0], gb / best[0], best[1], gb / best[1], best[0] / best[1]);
    free(w);
  }
}
