/*
 * One instruction set's integer-dot kernels (quant-q8.c) for the four quantized types. The
 * including file sets the target with #pragma GCC target and defines S (the name suffix), QMR /
 * QNR (rows of x and weight rows per tile) and DOT (64 bytes x 64 bytes -> 16 exact int32 lane
 * sums); this file undefines them again.
 *
 * Each type supplies, per superblock of SB values (64 for Q8_0 / Q4_0: two blocks; 256 for the
 * K-quants), the per-lane weight scales (and Q4_K's per-lane mins), and per 64-value chunk the
 * weights as bytes in value order: unsigned 0..63 for Q4_0 / Q4_K / Q6_K (the offset, 8 or 32, is
 * subtracted in the integer sum through x's lane sums), raw int8 for Q8_0.
 */
#define FN(name) CAT(CAT(name, T), S)

static inline __attribute__((always_inline)) float CAT(hsum8, S)(v16f v) {
  float t[16];
  memcpy(t, &v, sizeof t);
  for (int s = 8; s > 0; s /= 2)
    for (int i = 0; i < s; i++) t[i] = t[i] + t[i + s];
  return t[0];
}

static inline __attribute__((always_inline)) v16f CAT(pair_lanes, S)(float a, float b) {
  /* Two broadcasts and a lane select (a shuffle of a 2-vector goes through memory). */
  const v16f va = (v16f){0} + a, vb = (v16f){0} + b;
  return __builtin_shufflevector(va, vb, 0, 1, 2, 3, 4, 5, 6, 7, 24, 25, 26, 27, 28, 29, 30, 31);
}

static inline __attribute__((always_inline)) v64u CAT(load64, S)(const unsigned char *p) {
  v64u v;
  memcpy(&v, p, 64);
  return v;
}
static inline __attribute__((always_inline)) v32u CAT(load32, S)(const unsigned char *p) {
  v32u v;
  memcpy(&v, p, 32);
  return v;
}
static inline __attribute__((always_inline)) v16u CAT(load16, S)(const unsigned char *p) {
  v16u v;
  memcpy(&v, p, 16);
  return v;
}

/* --- Q8_0: blocks of half d, int8 q[32]; a superblock is two blocks (the second may be absent) --- */
static inline __attribute__((always_inline)) void CAT(hdr8_q8_0, S)(const unsigned char *b, int tail, v16f *ws, v16f *wm) {
  (void)wm;
  ws[0] = CAT(pair_lanes, S)(h2f(b), tail ? 0.0f : h2f(b + 34));
}
static inline __attribute__((always_inline)) v64u CAT(chunk8_q8_0, S)(const unsigned char *b, int c, int tail) {
  (void)c;
  const v32u lo = CAT(load32, S)(b + 2), hi = tail ? (v32u){0} : CAT(load32, S)(b + 36);
  return __builtin_shufflevector(lo, hi, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49,
                                 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63);
}

/* --- Q4_0: blocks of half d, qs[16] (low nibbles values 0-15, high 16-31) --- */
static inline __attribute__((always_inline)) void CAT(hdr8_q4_0, S)(const unsigned char *b, int tail, v16f *ws, v16f *wm) {
  (void)wm;
  ws[0] = CAT(pair_lanes, S)(h2f(b), tail ? 0.0f : h2f(b + 18));
}
static inline __attribute__((always_inline)) v64u CAT(chunk8_q4_0, S)(const unsigned char *b, int c, int tail) {
  (void)c;
  const v16u a = CAT(load16, S)(b + 2), z = tail ? (v16u){0} : CAT(load16, S)(b + 20);
  const v32u az = __builtin_shufflevector(a, z, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31);
  const v64u t = __builtin_shufflevector(az, az, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27,
                                         28, 29, 30, 31, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31);
  const v64u lo = t & 15, hi = t >> 4;
  return __builtin_shufflevector(lo, hi, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 80, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94, 95, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43,
                                 44, 45, 46, 47, 112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 127);
}

/* --- Q4_K: half d, dmin; scales[12] (6-bit sc, m per 32 values); qs[128]; value d sc q - dmin m --- */
static inline __attribute__((always_inline)) void CAT(hdr8_q4_k, S)(const unsigned char *b, int tail, v16f *ws, v16f *wm) {
  (void)tail;
  const float d = h2f(b), dmin = h2f(b + 2);
  const unsigned char *s = b + 4;
  float hs[8], hm[8];
  for (int j = 0; j < 8; j++) {
    const int sc = j < 4 ? s[j] & 63 : (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
    const int mn = j < 4 ? s[j + 4] & 63 : (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    hs[j] = d * (float)sc; /* exact: 11 x 6 bits */
    hm[j] = dmin * (float)mn;
  }
  for (int c = 0; c < 4; c++) {
    ws[c] = CAT(pair_lanes, S)(hs[2 * c], hs[2 * c + 1]);
    wm[c] = CAT(pair_lanes, S)(hm[2 * c], hm[2 * c + 1]);
  }
}
static inline __attribute__((always_inline)) v64u CAT(chunk8_q4_k, S)(const unsigned char *b, int c, int tail) {
  (void)tail;
  const v32u q = CAT(load32, S)(b + 16 + 32 * c);
  const v64u t = __builtin_shufflevector(q, q, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
                                         12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31);
  const v64u lo = t & 15, hi = t >> 4;
  return __builtin_shufflevector(lo, hi, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 96, 97, 98, 99, 100, 101, 102, 103, 104, 105,
                                 106, 107, 108, 109, 110, 111, 112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 127);
}

/* --- Q6_K: ql[128]; qh[64]; int8 scales[16] (per 16 values); half d; value d sc (q - 32) --- */
static inline __attribute__((always_inline)) void CAT(hdr8_q6_k, S)(const unsigned char *b, int tail, v16f *ws, v16f *wm) {
  (void)tail, (void)wm;
  /* int8 -> float through a zero extension (a direct sign extension is scalarized by GCC). */
  const v16f f = __builtin_convertvector(__builtin_convertvector(CAT(load16, S)(b + 192) ^ 0x80, v16i) - 128, v16f) * h2f(b + 208); /* exact: 11 x 8 bits */
  ws[0] = __builtin_shufflevector(f, f, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
  ws[1] = __builtin_shufflevector(f, f, 4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7);
  ws[2] = __builtin_shufflevector(f, f, 8, 8, 8, 8, 9, 9, 9, 9, 10, 10, 10, 10, 11, 11, 11, 11);
  ws[3] = __builtin_shufflevector(f, f, 12, 12, 12, 12, 13, 13, 13, 13, 14, 14, 14, 14, 15, 15, 15, 15);
}
static inline __attribute__((always_inline)) v64u CAT(chunk8_q6_k, S)(const unsigned char *b, int c, int tail) {
  (void)tail;
  typedef unsigned short v16w __attribute__((vector_size(32)));
  const int n = c >> 1, half = c & 1;
  const v32u A = CAT(load32, S)(b + 64 * n), B = CAT(load32, S)(b + 64 * n + 32), H = CAT(load32, S)(b + 128 + 32 * n);
  const v32u la = half ? A >> 4 : A & 15, lb = half ? B >> 4 : B & 15;
  const v32u ha = (H >> (4 * half)) & 3, hb = (H >> (4 * half + 2)) & 3;
  /* The 2 high bits (< 4) shifted in 16-bit lanes, where nothing crosses into the next byte. */
  const v32u x0 = la | (v32u)((v16w)ha << 4), x1 = lb | (v32u)((v16w)hb << 4);
  return __builtin_shufflevector(x0, x1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44,
                                 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63);
}

#define T q8_0
#define BE 32
#define BB 34
#define SB 64
#define CH 1
#define SH 7
#define SGN 1
#define MIN 0
#include "quant-q8-type.h"

#define T q4_0
#define BE 32
#define BB 18
#define SB 64
#define CH 1
#define SH 3
#define SGN 0
#define MIN 0
#include "quant-q8-type.h"

#define T q4_k
#define BE 256
#define BB 144
#define SB 256
#define CH 4
#define SH 0
#define SGN 0
#define MIN 1
#include "quant-q8-type.h"

#define T q6_k
#define BE 256
#define BB 210
#define SB 256
#define CH 4
#define SH 5
#define SGN 0
#define MIN 0
#include "quant-q8-type.h"

#undef FN
#undef S
#undef QMR
#undef QNR
#undef DOT
