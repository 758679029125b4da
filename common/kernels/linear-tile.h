/*
 * One instantiation of the panel kernel for an instruction set and a weight dtype. The including
 * file defines:
 *   SUFFIX      name suffix of the generated functions
 *   MR          rows of x per tile
 *   NP          panels per tile (a tile is MR rows x NP panels = MR x 16 NP outputs)
 *   WT          stored weight element type
 *   LOAD(p)     16 weights at p as a float vector (V)
 * and sets the target ISA with #pragma GCC target before including this file.
 */
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)

/*
 * acc (mr, 16 NP) += x (mr, k0 .. k0 + kc) @ NP panels' weights over the same k (w[q] points at
 * panel q's block). x rows are K apart; acc rows are 16 NP apart. Inlined with a constant mr (see
 * tile_), so that every accumulator lives in a register.
 */
static inline __attribute__((always_inline)) void CAT(tile_rows_, SUFFIX)(const float *x, long K, const WT *const *w, long kc, const int mr, float *acc_io) {
  V acc[MR][NP];
  for (int i = 0; i < mr; i++)
    for (int q = 0; q < NP; q++) acc[i][q] = *(const V *)(acc_io + (i * NP + q) * PANEL);
  for (long k = 0; k < kc; k++) {
    V wv[NP];
    for (int q = 0; q < NP; q++) wv[q] = LOAD(w[q] + k * PANEL);
    for (int i = 0; i < mr; i++) {
      const float xi = x[i * K + k];
      for (int q = 0; q < NP; q++) acc[i][q] += wv[q] * xi;
    }
  }
  for (int i = 0; i < mr; i++)
    for (int q = 0; q < NP; q++) *(V *)(acc_io + (i * NP + q) * PANEL) = acc[i][q];
}

static void CAT(tile_, SUFFIX)(const float *x, long K, const WT *const *w, long kc, int mr, float *acc_io) {
  switch (mr) {
#define ROWS_CASE(n) \
  case n:            \
    CAT(tile_rows_, SUFFIX)(x, K, w, kc, n, acc_io); \
    break;
    ROWS_CASE(1)
    ROWS_CASE(2)
#if MR > 2
    ROWS_CASE(3)
    ROWS_CASE(4)
    ROWS_CASE(5)
    ROWS_CASE(6)
#endif
#if MR > 6
    ROWS_CASE(7)
    ROWS_CASE(8)
#endif
#if MR > 8
    ROWS_CASE(9)
    ROWS_CASE(10)
    ROWS_CASE(11)
    ROWS_CASE(12)
#endif
#undef ROWS_CASE
  }
}

/*
 * One row of x (batch-1 decode), four panels at a time: four weight streams in flight reach the
 * memory bandwidth where the two-panel tile leaves it latency-bound. Each output still sums its
 * products in k order with one fused multiply-add chain, exactly as the tiles do, so a row's
 * result does not depend on how many rows share the call.
 */
static void CAT(gemv_, SUFFIX)(const float *x, long K, const WT *panels, long p0, long p1, float *out, long N, int accumulate) {
  for (long p = p0; p < p1; p += 4) {
    const int np = p1 - p < 4 ? (int)(p1 - p) : 4;
    const WT *w = panels + p * K * PANEL;
    V acc[4] = {{0}, {0}, {0}, {0}};
    if (np == 4) {
      for (long k = 0; k < K; k++) {
        acc[0] += LOAD(w + k * PANEL) * x[k];
        acc[1] += LOAD(w + (K + k) * PANEL) * x[k];
        acc[2] += LOAD(w + (2 * K + k) * PANEL) * x[k];
        acc[3] += LOAD(w + (3 * K + k) * PANEL) * x[k];
      }
    } else {
      for (int q = 0; q < np; q++)
        for (long k = 0; k < K; k++) acc[q] += LOAD(w + (q * K + k) * PANEL) * x[k];
    }
    for (int q = 0; q < np; q++)
      for (int j = 0; j < PANEL; j++) {
        const long n = (p + q) * PANEL + j;
        if (n < N) out[n] = accumulate ? out[n] + acc[q][j] : acc[q][j];
      }
  }
}

#if MR >= 8
/*
 * Two to six rows of x (small decode batches), four panels at a time: like gemv_, enough
 * weight streams in flight to stay bandwidth-bound, each weight loaded once for all rows. Needs
 * up to 24 vector registers of accumulators, so only where there are 32 (AVX-512).
 */
static inline __attribute__((always_inline)) void CAT(narrow_rows_, SUFFIX)(const float *x, long K, const WT *panels, long p0, long p1, float *out, long N, int accumulate, const int mr) {
  for (long p = p0; p < p1; p += 4) {
    const int np = p1 - p < 4 ? (int)(p1 - p) : 4;
    const WT *w = panels + p * K * PANEL;
    V acc[6][4];
    for (int i = 0; i < 6; i++) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = (V){0};
    if (np == 4) {
      for (long k = 0; k < K; k++) {
        const V w0 = LOAD(w + k * PANEL), w1 = LOAD(w + (K + k) * PANEL);
        const V w2 = LOAD(w + (2 * K + k) * PANEL), w3 = LOAD(w + (3 * K + k) * PANEL);
        for (int i = 0; i < mr; i++) {
          const float xi = x[i * K + k];
          acc[i][0] += w0 * xi;
          acc[i][1] += w1 * xi;
          acc[i][2] += w2 * xi;
          acc[i][3] += w3 * xi;
        }
      }
    } else {
      for (int q = 0; q < np; q++)
        for (long k = 0; k < K; k++) {
          const V wq = LOAD(w + (q * K + k) * PANEL);
          for (int i = 0; i < mr; i++) acc[i][q] += wq * x[i * K + k];
        }
    }
    for (int i = 0; i < mr; i++)
      for (int q = 0; q < np; q++)
        for (int j = 0; j < PANEL; j++) {
          const long n = (p + q) * PANEL + j;
          if (n < N) out[i * N + n] = accumulate ? out[i * N + n] + acc[i][q][j] : acc[i][q][j];
        }
  }
}

static void CAT(narrow_, SUFFIX)(const float *x, long K, const WT *panels, long p0, long p1, float *out, long N, int accumulate, int mr) {
  switch (mr) {
    case 2: CAT(narrow_rows_, SUFFIX)(x, K, panels, p0, p1, out, N, accumulate, 2); break;
    case 3: CAT(narrow_rows_, SUFFIX)(x, K, panels, p0, p1, out, N, accumulate, 3); break;
    case 4: CAT(narrow_rows_, SUFFIX)(x, K, panels, p0, p1, out, N, accumulate, 4); break;
    case 5: CAT(narrow_rows_, SUFFIX)(x, K, panels, p0, p1, out, N, accumulate, 5); break;
    case 6: CAT(narrow_rows_, SUFFIX)(x, K, panels, p0, p1, out, N, accumulate, 6); break;
  }
}
#endif

/*
 * Panels [p0, p1) against every row of x, blocked so that the operands stay in the core's
 * caches: rows of x in chunks (a chunk meets every panel while it sits in L2), K in blocks (a
 * block of two panels stays in L1 while every tile of the chunk uses it). Each panel then comes
 * from memory once per chunk; at decode time there is one chunk, so every weight is read once.
 */
static void CAT(panels_, SUFFIX)(const struct linear_job *job, long p0, long p1) {
  const long K = job->K, M = job->M, N = job->N;
  const WT *panels = job->panels;
  if (M == 1) {
    CAT(gemv_, SUFFIX)(job->x, K, panels, p0, p1, job->out, N, job->accumulate);
    return;
  }
#if MR >= 8
  if (M <= 6) {
    CAT(narrow_, SUFFIX)(job->x, K, panels, p0, p1, job->out, N, job->accumulate, (int)M);
    return;
  }
#endif
  const long kBlock = 256;
  long chunk = (512L * 1024) / (K * 4);
  chunk = chunk < MR ? MR : chunk > 8 * MR ? 8 * MR : chunk - chunk % MR;
  /* Accumulators of one chunk x NP panels, (chunk, 16 NP), 64-byte aligned for whole vectors. */
  float acc[8 * MR * NP * PANEL] __attribute__((aligned(64)));
  const WT zero_panel[PANEL * 256] = {0};
  for (long m0 = 0; m0 < M; m0 += chunk) {
    const long rows = m0 + chunk < M ? chunk : M - m0;
    for (long p = p0; p < p1; p += NP) {
      const int np = p1 - p < NP ? (int)(p1 - p) : NP; /* the last group may be short */
      for (long i = 0; i < rows * NP * PANEL; i++) acc[i] = 0.0f;
      for (long k0 = 0; k0 < K; k0 += kBlock) {
        const long kc = K - k0 < kBlock ? K - k0 : kBlock;
        const WT *w[NP];
        for (int q = 0; q < NP; q++) w[q] = q < np ? panels + ((p + q) * K + k0) * PANEL : zero_panel;
        for (long m = 0; m < rows; m += MR) {
          const int mr = (int)(rows - m < MR ? rows - m : MR);
          CAT(tile_, SUFFIX)(job->x + (m0 + m) * K + k0, K, w, kc, mr, acc + m * NP * PANEL);
        }
      }
      for (long i = 0; i < rows; i++) {
        float *row = job->out + (m0 + i) * N;
        for (int j = 0; j < np * PANEL; j++) {
          const long n = p * PANEL + j;
          if (n >= N) break;
          row[n] = job->accumulate ? row[n] + acc[i * NP * PANEL + j] : acc[i * NP * PANEL + j];
        }
      }
    }
  }
}
