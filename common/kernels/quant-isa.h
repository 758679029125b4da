/*
 * One instruction set's quantized linear kernels: the including file sets the target with
 * #pragma GCC target and defines S, QMR and QNR; this file defines the float tile shared by the
 * types, the four types' block decoders and kernels, and undefines S, QMR and QNR again.
 */

/* 16 bytes -> 16 floats, through 32-bit integers (a direct conversion is scalarized by GCC). */
static inline __attribute__((always_inline)) V CAT(s8_to_float, S)(vi8 q) {
  /* Sign extension is scalarized too: flip the sign bit, zero-extend, subtract 128 (exact). */
  return __builtin_convertvector(__builtin_convertvector((vu8)q ^ 0x80, vi32) - 128, V);
}
static inline __attribute__((always_inline)) V CAT(u8_to_float, S)(vu8 q) { return __builtin_convertvector(__builtin_convertvector(q, vi32), V); }

/* Sum of the 16 lanes in a fixed tree (the same on every path). */
static inline __attribute__((always_inline)) float CAT(hsum, S)(const V *v) {
  float t[16];
  memcpy(t, v, sizeof t);
  for (int s = 8; s > 0; s /= 2)
    for (int i = 0; i < s; i++) t[i] = t[i] + t[i + s];
  return t[0];
}

/* acc (mr, nr) from nr dequantized rows in buf (nr, K). */
static inline __attribute__((always_inline)) void CAT(float_tile, S)(const struct quant_job *job, const float *buf, long n, const int nr, long m, const int mr) {
  const long K = job->K;
  V acc[QMR][QNR];
  for (int i = 0; i < mr; i++)
    for (int r = 0; r < nr; r++) acc[i][r] = (V){0};
  const float *x = job->x + m * K;
  for (long k = 0; k < K; k += 16) {
    V wv[QNR];
    for (int r = 0; r < nr; r++) wv[r] = *(const V *)(buf + r * K + k);
    for (int i = 0; i < mr; i++) {
      const V xv = *(const UV *)(x + i * K + k);
      for (int r = 0; r < nr; r++) acc[i][r] += wv[r] * xv;
    }
  }
  for (int i = 0; i < mr; i++)
    for (int r = 0; r < nr; r++) store_out(job, m + i, n + r, CAT(hsum, S)(&acc[i][r]));
}

static void CAT(float_any, S)(const struct quant_job *job, const float *buf, long n, int nr, long m, int mr) {
  if (nr == QNR && mr == QMR) CAT(float_tile, S)(job, buf, n, QNR, m, QMR);
  else
    for (int r = 0; r < nr; r++)
      for (int i = 0; i < mr; i++) CAT(float_tile, S)(job, buf + r * job->K, n + r, 1, m + i, 1);
}

/* --- Q8_0: half d; int8 q[32] --- */
static inline __attribute__((always_inline)) void CAT(hdr_q8_0, S)(const unsigned char *b, float *h) { h[0] = half_to_float(b); }
static inline __attribute__((always_inline)) V CAT(chunk_q8_0, S)(const unsigned char *b, const float *h, int c) {
  return CAT(s8_to_float, S)(*(const vi8 *)(b + 2 + 16 * c)) * h[0];
}

/* --- Q4_0: half d; uint8 qs[16] (low nibbles values 0-15, high nibbles 16-31), q - 8 --- */
static inline __attribute__((always_inline)) void CAT(hdr_q4_0, S)(const unsigned char *b, float *h) { h[0] = half_to_float(b); }
static inline __attribute__((always_inline)) V CAT(chunk_q4_0, S)(const unsigned char *b, const float *h, int c) {
  const vu8 q = *(const vu8 *)(b + 2);
  const vu8 nib = c == 0 ? (q & 15) : (q >> 4);
  return (CAT(u8_to_float, S)(nib) - 8.0f) * h[0];
}

/* --- Q4_K: half d, dmin; scales[12]; qs[128]; h = d * sc[0..7], dmin * m[0..7] --- */
static inline __attribute__((always_inline)) void CAT(hdr_q4_k, S)(const unsigned char *b, float *h) {
  const float d = half_to_float(b), dmin = half_to_float(b + 2);
  const unsigned char *s = b + 4;
  for (int j = 0; j < 8; j++) {
    const int sc = j < 4 ? s[j] & 63 : (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
    const int mn = j < 4 ? s[j + 4] & 63 : (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    h[j] = d * (float)sc;
    h[8 + j] = dmin * (float)mn;
  }
}
static inline __attribute__((always_inline)) V CAT(chunk_q4_k, S)(const unsigned char *b, const float *h, int c) {
  const int g = c >> 2, hi = (c >> 1) & 1, l0 = (c & 1) * 16;
  const vu8 q = *(const vu8 *)(b + 16 + 32 * g + l0);
  const vu8 nib = hi ? (q >> 4) : (q & 15);
  /* (d sc) q is exact, so this rounds once, fused or not. */
  return CAT(u8_to_float, S)(nib) * h[2 * g + hi] - h[8 + 2 * g + hi];
}

/* --- Q6_K: ql[128]; qh[64]; int8 scales[16]; half d; h = d * scales --- */
static inline __attribute__((always_inline)) void CAT(hdr_q6_k, S)(const unsigned char *b, float *h) {
  const float d = half_to_float(b + 208);
  for (int j = 0; j < 16; j++) h[j] = d * (float)(signed char)b[192 + j];
}
static inline __attribute__((always_inline)) V CAT(chunk_q6_k, S)(const unsigned char *b, const float *h, int c) {
  const int n = c >> 3, qq = (c >> 1) & 3, l0 = (c & 1) * 16;
  /* Byte shifts left would be built from adds: the 2 high bits (< 4) are shifted in 16-bit
     lanes instead, where nothing crosses into the next byte. */
  const vu8 ql = *(const vu8 *)(b + 64 * n + l0 + (qq & 1) * 32);
  const vu8 qh = *(const vu8 *)(b + 128 + 32 * n + l0);
  const vu8 hb = (qh >> (2 * qq)) & 3;
  const vu8 q = ((qq >> 1) ? (ql >> 4) : (ql & 15)) | (vu8)((vu16)hb << 4);
  return (CAT(u8_to_float, S)(q) - 32.0f) * h[8 * n + (l0 >> 4) + 2 * qq];
}

#define T q8_0_
#define BE 32
#define BB 34
#define HDR CAT(hdr_q8_0, S)
#define CHUNK CAT(chunk_q8_0, S)
#include "quant-type.h"
#undef T
#undef BE
#undef BB
#undef HDR
#undef CHUNK

#define T q4_0_
#define BE 32
#define BB 18
#define HDR CAT(hdr_q4_0, S)
#define CHUNK CAT(chunk_q4_0, S)
#include "quant-type.h"
#undef T
#undef BE
#undef BB
#undef HDR
#undef CHUNK

#define T q4_k_
#define BE 256
#define BB 144
#define HDR CAT(hdr_q4_k, S)
#define CHUNK CAT(chunk_q4_k, S)
#include "quant-type.h"
#undef T
#undef BE
#undef BB
#undef HDR
#undef CHUNK

#define T q6_k_
#define BE 256
#define BB 210
#define HDR CAT(hdr_q6_k, S)
#define CHUNK CAT(chunk_q6_k, S)
#include "quant-type.h"
#undef T
#undef BE
#undef BB
#undef HDR
#undef CHUNK

#undef S
#undef QMR
#undef QNR
