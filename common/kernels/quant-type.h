/*
 * One instruction set's linear kernel for one quantized type. The including file (quant-isa.h)
 * defines S (the name suffix), V and QMR / QNR (rows of x and weight rows per tile); this file is
 * included once per type with:
 *   T            type name (q8_0, ...)
 *   BE, BB       elements and bytes per block
 *   HDR(b, h)    decodes block b's scales into the floats h[]
 *   CHUNK(b, h, c)  values [16c, 16c + 16) of block b as a float vector (exact)
 *
 * Each output (m, n) is sum_k x[m][k] * w[n][k] computed the same way on every path: lane j of a
 * 16-lane accumulator adds x * w for k = j (mod 16) in increasing k with one fused multiply-add
 * chain, then the lanes are summed by hsum's fixed tree. Only the order of independent outputs
 * depends on M or the thread split, so results are batch- and shape-invariant.
 */
#define FN(name) CAT(CAT(name, T), S)

/* acc (mr, nr) over weight rows n.. directly from the blocks (decode batches). */
static inline __attribute__((always_inline)) void FN(direct_)(const struct quant_job *job, long n, const int nr, long m, const int mr) {
  const long K = job->K, nb = K / BE, rowb = nb * BB;
  V acc[QMR][QNR];
  for (int i = 0; i < mr; i++)
    for (int r = 0; r < nr; r++) acc[i][r] = (V){0};
  for (long b = 0; b < nb; b++) {
    const float *xb = job->x + m * K + b * BE;
    const unsigned char *blk[QNR];
    float h[QNR][16];
    for (int r = 0; r < nr; r++) {
      blk[r] = job->w + (n + r) * rowb + b * BB;
      HDR(blk[r], h[r]);
    }
#pragma GCC unroll 16
    for (int c = 0; c < BE / 16; c++) {
      V xv[QMR];
      for (int i = 0; i < mr; i++) xv[i] = *(const UV *)(xb + i * K + 16 * c);
      for (int r = 0; r < nr; r++) {
        const V wv = CHUNK(blk[r], h[r], c);
        for (int i = 0; i < mr; i++) acc[i][r] += wv * xv[i];
      }
    }
  }
  for (int i = 0; i < mr; i++)
    for (int r = 0; r < nr; r++) store_out(job, m + i, n + r, CAT(hsum, S)(&acc[i][r]));
}

static void FN(direct_any_)(const struct quant_job *job, long n, int nr, long m, int mr) {
  if (nr == QNR) {
    switch (mr) {
      case 1: FN(direct_)(job, n, QNR, m, 1); break;
      case 2: FN(direct_)(job, n, QNR, m, 2); break;
#if QMR > 2
      case 3: FN(direct_)(job, n, QNR, m, 3); break;
      case 4: FN(direct_)(job, n, QNR, m, 4); break;
#endif
    }
  } else {
    for (int r = 0; r < nr; r++) switch (mr) {
        case 1: FN(direct_)(job, n + r, 1, m, 1); break;
        case 2: FN(direct_)(job, n + r, 1, m, 2); break;
#if QMR > 2
        case 3: FN(direct_)(job, n + r, 1, m, 3); break;
        case 4: FN(direct_)(job, n + r, 1, m, 4); break;
#endif
      }
  }
}

/* Dequantizes weight rows [n, n + nr) into buf (nr, K). */
static void FN(dequant_rows_)(const struct quant_job *job, long n, int nr, float *buf) {
  const long K = job->K, nb = K / BE, rowb = nb * BB;
  for (int r = 0; r < nr; r++)
    for (long b = 0; b < nb; b++) {
      const unsigned char *blk = job->w + (n + r) * rowb + b * BB;
      float h[16];
      HDR(blk, h);
#pragma GCC unroll 16
      for (int c = 0; c < BE / 16; c++) *(V *)(buf + r * K + b * BE + 16 * c) = CHUNK(blk, h, c);
    }
}

static void FN(quant_rows_)(const struct quant_job *job, long n0, long n1) {
  const long M = job->M;
  if (M <= QMR) {
    for (long n = n0; n < n1; n += QNR) FN(direct_any_)(job, n, n1 - n < QNR ? (int)(n1 - n) : QNR, 0, (int)M);
    return;
  }
  /* Larger batches: dequantize QNR rows once into a float32 buffer, then every tile of x uses it. */
  float *buf = aligned_alloc(64, (size_t)QNR * (size_t)job->K * sizeof(float));
  if (buf == 0) { /* no memory for the buffer: the slower direct path gives the same results */
    for (long n = n0; n < n1; n += QNR)
      for (long m = 0; m < M; m += QMR) FN(direct_any_)(job, n, n1 - n < QNR ? (int)(n1 - n) : QNR, m, M - m < QMR ? (int)(M - m) : QMR);
    return;
  }
  for (long n = n0; n < n1; n += QNR) {
    const int nr = n1 - n < QNR ? (int)(n1 - n) : QNR;
    FN(dequant_rows_)(job, n, nr, buf);
    for (long m = 0; m < M; m += QMR) CAT(float_any, S)(job, buf, n, nr, m, M - m < QMR ? (int)(M - m) : QMR);
  }
  free(buf);
}

#undef FN
