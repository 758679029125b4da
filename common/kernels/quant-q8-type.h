/*
 * One type's integer-dot kernel for one instruction set (included by quant-q8-isa.h with T, BE /
 * BB (block values / bytes), SB (values per superblock), CH (64-value chunks per superblock), SH
 * (log2 of the weights' offset, 0 for none), SGN (signed weight bytes) and MIN (per-lane mins)).
 * See quant-q8.c for the order of the operations, which is the same for every tile shape.
 */
#define SBB (SB / BE * BB)

/* acc (mr, nr) for x rows m.. and weight rows n.. */
static inline __attribute__((always_inline)) void FN(tile8_)(const struct quant_job *job, long n, const int nr, long m, const int mr) {
  const struct quant_x8 *x8 = job->x8;
  const long K = job->K, Kp = x8->Kp, rowb = K / BE * BB, nsb = (K + SB - 1) / SB;
  v16f acc[QMR][QNR];
  for (int i = 0; i < mr; i++)
    for (int r = 0; r < nr; r++) acc[i][r] = (v16f){0};
  for (long sb = 0; sb < nsb; sb++) {
    const int tail = (sb + 1) * SB > K; /* Q8_0 / Q4_0 with an odd block count: the last block alone */
    const unsigned char *blk[QNR];
    v16f ws[QNR][CH], wm[QNR][CH];
    for (int r = 0; r < nr; r++) {
      blk[r] = job->w + (n + r) * rowb + sb * SBB;
      CAT(CAT(hdr8_, T), S)(blk[r], tail, ws[r], wm[r]);
    }
#pragma GCC unroll 4
    for (int c = 0; c < CH; c++) {
      v64u wv[QNR];
      for (int r = 0; r < nr; r++) wv[r] = CAT(CAT(chunk8_, T), S)(blk[r], c, tail);
      const long e = sb * SB + 64 * c;
      for (int i = 0; i < mr; i++) {
        const long lane = (m + i) * (Kp / 4) + e / 4;
        const v64s xq = (v64s)CAT(load64, S)((const unsigned char *)x8->q + (m + i) * Kp + e);
        const v16f xd = *(const v16f *)(x8->d + lane);
        const v16i init = SH ? -(*(const v16i *)(x8->s + lane) << SH) : (v16i){0};
        for (int r = 0; r < nr; r++) {
          const v16i p = DOT(init, wv[r], xq, SGN);
          acc[i][r] += __builtin_convertvector(p, v16f) * (ws[r][c] * xd);
          if (MIN) acc[i][r] -= wm[r][c] * *(const v16f *)(x8->ds + lane);
        }
      }
    }
  }
  for (int i = 0; i < mr; i++)
    for (int r = 0; r < nr; r++) store_out8(job, m + i, n + r, CAT(hsum8, S)(acc[i][r]));
}

static void FN(any8_)(const struct quant_job *job, long n, int nr, long m, int mr) {
  if (nr == QNR) {
    switch (mr) {
      case 1: FN(tile8_)(job, n, QNR, m, 1); break;
      case 2: FN(tile8_)(job, n, QNR, m, 2); break;
#if QMR > 2
      case 3: FN(tile8_)(job, n, QNR, m, 3); break;
      case 4: FN(tile8_)(job, n, QNR, m, 4); break;
#endif
    }
  } else {
    for (int r = 0; r < nr; r++) switch (mr) {
        case 1: FN(tile8_)(job, n + r, 1, m, 1); break;
        case 2: FN(tile8_)(job, n + r, 1, m, 2); break;
#if QMR > 2
        case 3: FN(tile8_)(job, n + r, 1, m, 3); break;
        case 4: FN(tile8_)(job, n + r, 1, m, 4); break;
#endif
      }
  }
}

/*
 * Rows of x in chunks whose 8-bit copy (4 bytes per value with the lane arrays) stays in L2 while
 * every weight tile meets it; at decode time there is one chunk, so every weight is read once.
 */
static void FN(q8_rows_)(const struct quant_job *job, long n0, long n1) {
  const long M = job->M;
  long chunk = (256L * 1024) / (4 * job->x8->Kp);
  chunk = chunk < QMR ? QMR : chunk - chunk % QMR;
  for (long m0 = 0; m0 < M; m0 += chunk) {
    const long m1 = m0 + chunk < M ? m0 + chunk : M;
    for (long n = n0; n < n1; n += QNR) {
      const int nr = n1 - n < QNR ? (int)(n1 - n) : QNR;
      for (long m = m0; m < m1; m += QMR) FN(any8_)(job, n, nr, m, m1 - m < QMR ? (int)(m1 - m) : QMR);
    }
  }
}

#undef SBB
#undef T
#undef BE
#undef BB
#undef SB
#undef CH
#undef SH
#undef SGN
#undef MIN
