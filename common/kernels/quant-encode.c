/*
 * Row quantizers and dequantizers for ggml's block formats (quant.h), the native counterparts of
 * common/model/quant-formats.ts: Q8_0 and Q4_0 choose scales as llama.cpp's reference
 * quantizers do; Q4_K and Q6_K use the same scale searches as the TypeScript reference (in
 * float32 here, so a scale may differ in its last bit; both decode with the one definition).
 * Rows are independent, so callers split them over threads.
 *
 * No fused multiply-adds here: `x * id + 8.5f` must round twice, as the reference writes it, in
 * every instruction-set clone, or a value on a rounding edge quantizes differently depending on
 * the CPU that wrote the file (seen: one Q4_0 byte in 6912 of tiny-mistral's down_proj).
 */
#pragma GCC optimize("fp-contract=off")
#include "quant.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* float32 -> IEEE half bits, round to nearest even (overflow to infinity). */
static unsigned short float_to_half(float value) {
  union { float f; unsigned u; } v = {value};
  const unsigned sign = (v.u >> 16) & 0x8000u, exp = (v.u >> 23) & 0xff;
  unsigned mant = v.u & 0x7fffff;
  if (exp == 0xff) return (unsigned short)(sign | 0x7c00u | (mant ? 0x200u : 0));
  const int half_exp = (int)exp - 127 + 15;
  if (half_exp >= 31) return (unsigned short)(sign | 0x7c00u);
  if (half_exp <= 0) {
    if (half_exp < -10) return (unsigned short)sign;
    mant |= 0x800000u;
    const int shift = 14 - half_exp;
    const unsigned hm = mant >> shift, rest = mant & ((1u << shift) - 1), halfway = 1u << (shift - 1);
    return (unsigned short)(sign | (hm + (rest > halfway || (rest == halfway && (hm & 1)))));
  }
  const unsigned hm = mant >> 13, rest = mant & 0x1fff;
  return (unsigned short)(sign | (((unsigned)half_exp << 10) + hm + (rest > 0x1000 || (rest == 0x1000 && (hm & 1)))));
}

static float half_value(unsigned short h) {
  const unsigned sign = (h & 0x8000u) << 16, exp = (h >> 10) & 31, mant = h & 0x3ff;
  union { unsigned u; float f; } v;
  if (exp == 0) {
    v.f = (float)mant * 0x1p-24f;
    v.u |= sign;
  } else if (exp == 31) v.u = sign | 0x7f800000u | (mant << 13);
  else v.u = sign | ((exp + 112) << 23) | (mant << 13);
  return v.f;
}

static void put_half(unsigned char *p, unsigned short h) {
  p[0] = (unsigned char)(h & 255);
  p[1] = (unsigned char)(h >> 8);
}

/* Ternaries, not fminf / fmaxf (libm calls, for their NaN rules). */
static inline float minf(float a, float b) { return a < b ? a : b; }
static inline float maxf(float a, float b) { return a > b ? a : b; }

typedef float vf8 __attribute__((vector_size(32)));
typedef int vi8 __attribute__((vector_size(32)));

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/*
 * C's roundf (halves away from zero) without a libm call (the file is built for baseline x86-64,
 * where roundf and nearbyintf are calls): float + 0.5 is exact in double.
 */
static inline int round_away(float v) {
  const int r = (int)(fabs((double)v) + 0.5);
  return v < 0 ? -r : r;
}

static inline __attribute__((always_inline)) void encode_q8_0(const float *x, unsigned char *o) {
  float amax = 0;
  for (int i = 0; i < 32; i++) amax = maxf(amax, fabsf(x[i]));
  const float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
  put_half(o, float_to_half(d));
  for (int i = 0; i < 32; i++) o[2 + i] = (unsigned char)(signed char)round_away(x[i] * id);
}

static inline __attribute__((always_inline)) void encode_q4_0(const float *x, unsigned char *o) {
  float amax = 0, max = 0;
  for (int i = 0; i < 32; i++)
    if (fabsf(x[i]) > amax) {
      amax = fabsf(x[i]);
      max = x[i];
    }
  const float d = max / -8.0f, id = d != 0 ? 1.0f / d : 0.0f;
  put_half(o, float_to_half(d));
  for (int j = 0; j < 16; j++) {
    const int a = (int)(x[j] * id + 8.5f), b = (int)(x[j + 16] * id + 8.5f);
    o[2 + j] = (unsigned char)((a < 15 ? a : 15) | ((b < 15 ? b : 15) << 4));
  }
}

/* value = scale * q - min, q in [0, nmax], min >= 0 (see fitScaleMin in quant-formats.ts). */
static inline __attribute__((always_inline)) void fit_scale_min(const float *x, int n, int nmax, float *scale_out, float *min_out) {
  float lo = x[0], hi = x[0];
  for (int i = 1; i < n; i++) {
    lo = minf(lo, x[i]);
    hi = maxf(hi, x[i]);
  }
  lo = minf(lo, 0);
  if (hi <= lo) {
    *scale_out = 0;
    *min_out = -lo;
    return;
  }
  float best_s = (hi - lo) / nmax, best_b = lo, best_err = INFINITY;
  float sx = 0, sxx = 0;
  for (int i = 0; i < n; i++) {
    sx += x[i];
    sxx += x[i] * x[i];
  }
  for (int step = -4; step <= 4; step++) {
    const float iscale = (nmax + 0.1f * step) / (hi - lo);
    float sq, sqq, sqx;
    if (n == 32) {
      /* The Q4_K case, in 8-lane vectors (float reductions do not vectorize on their own). */
      vf8 vq = {0}, vqq = {0}, vqx = {0};
      for (int i = 0; i < 32; i += 8) {
        vf8 xv;
        memcpy(&xv, x + i, sizeof xv);
        vi8 qi = __builtin_convertvector((xv - lo) * iscale + 0.5f, vi8);
        qi -= (qi > nmax) & (qi - nmax);
        const vf8 q = __builtin_convertvector(qi, vf8);
        vq += q;
        vqq += q * q;
        vqx += q * xv;
      }
      sq = sqq = sqx = 0;
      for (int l = 0; l < 8; l++) {
        sq += vq[l];
        sqq += vqq[l];
        sqx += vqx[l];
      }
    } else {
      sq = sqq = sqx = 0;
      for (int i = 0; i < n; i++) {
        /* round(iscale (x - lo)) clamped to [0, nmax]: the argument is >= 0, so + 0.5 and truncate. */
        const float q = (float)(int)minf(iscale * (x[i] - lo) + 0.5f, nmax + 0.5f);
        sq += q;
        sqq += q * q;
        sqx += q * x[i];
      }
    }
    const float det = n * sqq - sq * sq;
    if (det <= 0) continue;
    float s = (n * sqx - sq * sx) / det, b = (sqq * sx - sq * sqx) / det;
    if (b > 0) {
      b = 0;
      s = sqq > 0 ? sqx / sqq : 0;
    }
    if (s <= 0) continue;
    /* sum (s q + b - x)^2 over these q, from the sums. */
    const float err = s * s * sqq + 2 * s * b * sq - 2 * s * sqx + n * b * b - 2 * b * sx + sxx;
    if (err < best_err) {
      best_err = err;
      best_s = s;
      best_b = b;
    }
  }
  *scale_out = best_s;
  *min_out = -best_b;
}

static inline __attribute__((always_inline)) void encode_q4_k(const float *x, unsigned char *o) {
  float scales[8], mins[8], max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; j++) {
    fit_scale_min(x + 32 * j, 32, 15, &scales[j], &mins[j]);
    max_scale = maxf(max_scale, scales[j]);
    max_min = maxf(max_min, mins[j]);
  }
  const unsigned short dh = float_to_half(max_scale / 63), mh = float_to_half(max_min / 63);
  const float d = half_value(dh), dmin = half_value(mh);
  int ls[8], lm[8];
  for (int j = 0; j < 8; j++) {
    ls[j] = d > 0 ? clampi(round_away(scales[j] / d), 0, 63) : 0;
    lm[j] = dmin > 0 ? clampi(round_away(mins[j] / dmin), 0, 63) : 0;
  }
  put_half(o, dh);
  put_half(o + 2, mh);
  for (int j = 0; j < 4; j++) {
    o[4 + j] = (unsigned char)((ls[j] & 63) | ((ls[j + 4] >> 4) << 6));
    o[8 + j] = (unsigned char)((lm[j] & 63) | ((lm[j + 4] >> 4) << 6));
    o[12 + j] = (unsigned char)((ls[j + 4] & 15) | ((lm[j + 4] & 15) << 4));
  }
  unsigned char q[256];
  for (int j = 0; j < 8; j++) {
    const float s = d * (float)ls[j], m = dmin * (float)lm[j], is = s != 0 ? 1.0f / s : 0;
    /* (x + m) / s rounded, clamped to [0, 15]; negative arguments clamp to 0 anyway. */
    for (int l = 0; l < 32; l++) q[32 * j + l] = (unsigned char)(s == 0 ? 0 : clampi((int)maxf((x[32 * j + l] + m) * is + 0.5f, 0), 0, 15));
  }
  for (int g = 0; g < 4; g++)
    for (int l = 0; l < 32; l++) o[16 + 32 * g + l] = (unsigned char)(q[64 * g + l] | (q[64 * g + 32 + l] << 4));
}

static inline __attribute__((always_inline)) void encode_q6_k(const float *x, unsigned char *o) {
  float scales[16], max_scale = 0;
  for (int j = 0; j < 16; j++) {
    float amax = 0, max = 0;
    for (int i = 0; i < 16; i++)
      if (fabsf(x[16 * j + i]) > amax) {
        amax = fabsf(x[16 * j + i]);
        max = x[16 * j + i];
      }
    scales[j] = max / -32.0f;
    if (fabsf(scales[j]) > fabsf(max_scale)) max_scale = scales[j];
  }
  const unsigned short dh = float_to_half(max_scale / -128.0f);
  const float d = half_value(dh);
  memset(o, 0, 210);
  put_half(o + 208, dh);
  int ls[16];
  for (int j = 0; j < 16; j++) {
    ls[j] = d != 0 ? clampi(round_away(scales[j] / d), -128, 127) : 0;
    o[192 + j] = (unsigned char)(signed char)ls[j];
  }
  for (int j = 0; j < 16; j++) {
    const float step = d * (float)ls[j], is = step != 0 ? 1.0f / step : 0;
    for (int i = 0; i < 16; i++) {
      const int e = 16 * j + i;
      const int u = (step == 0 ? 0 : clampi(round_away(x[e] * is), -32, 31)) + 32;
      const int n = e >> 7, qq = (e & 127) >> 5, l = e & 31;
      o[64 * n + l + (qq & 1) * 32] |= (unsigned char)((u & 15) << ((qq >> 1) * 4));
      o[128 + 32 * n + l] |= (unsigned char)((u >> 4) << (2 * qq));
    }
  }
}

static const int elements[4] = {32, 32, 256, 256};
static const int bytes[4] = {34, 18, 144, 210};

/* Built for AVX2 + FMA where the CPU has them (an ifunc picks the clone at load time). */
__attribute__((target_clones("arch=x86-64-v3", "default"))) void quant_quantize_rows(enum quant_type type, const void *src, int bf16, unsigned char *dst, long K, long r0, long r1) {
  const long row_bytes = K / elements[type] * bytes[type];
  float *row = bf16 ? malloc((size_t)K * sizeof(float)) : 0;
  for (long r = r0; r < r1; r++) {
    const float *x;
    if (bf16) {
      const unsigned short *in = (const unsigned short *)src + r * K;
      unsigned *bits = (unsigned *)row;
      for (long k = 0; k < K; k++) bits[k] = (unsigned)in[k] << 16;
      x = row;
    } else x = (const float *)src + r * K;
    unsigned char *o = dst + r * row_bytes;
    const long nb = K / elements[type];
    switch (type) {
      case QUANT_Q8_0: for (long b = 0; b < nb; b++) encode_q8_0(x + 32 * b, o + 34 * b); break;
      case QUANT_Q4_0: for (long b = 0; b < nb; b++) encode_q4_0(x + 32 * b, o + 18 * b); break;
      case QUANT_Q4_K: for (long b = 0; b < nb; b++) encode_q4_k(x + 256 * b, o + 144 * b); break;
      case QUANT_Q6_K: for (long b = 0; b < nb; b++) encode_q6_k(x + 256 * b, o + 210 * b); break;
    }
  }
  free(row);
}

/* Scalar dequantization, the definitions of quant-formats.ts (used by the addon's dequantize). */
void quant_dequantize_rows(enum quant_type type, const unsigned char *src, float *dst, long K, long r0, long r1) {
  const long nb = K / elements[type], row_bytes = nb * bytes[type];
  for (long r = r0; r < r1; r++)
    for (long bi = 0; bi < nb; bi++) {
      const unsigned char *b = src + r * row_bytes + bi * bytes[type];
      float *y = dst + r * K + bi * elements[type];
      switch (type) {
        case QUANT_Q8_0: {
          const float d = half_value((unsigned short)(b[0] | b[1] << 8));
          for (int i = 0; i < 32; i++) y[i] = d * (float)(signed char)b[2 + i];
          break;
        }
        case QUANT_Q4_0: {
          const float d = half_value((unsigned short)(b[0] | b[1] << 8));
          for (int j = 0; j < 16; j++) {
            y[j] = d * (float)((b[2 + j] & 15) - 8);
            y[j + 16] = d * (float)((b[2 + j] >> 4) - 8);
          }
          break;
        }
        case QUANT_Q4_K: {
          const float d = half_value((unsigned short)(b[0] | b[1] << 8)), dmin = half_value((unsigned short)(b[2] | b[3] << 8));
          const unsigned char *s = b + 4;
          for (int j = 0; j < 8; j++) {
            const int sc = j < 4 ? s[j] & 63 : (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
            const int mn = j < 4 ? s[j + 4] & 63 : (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
            const float d1 = d * (float)sc, m1 = dmin * (float)mn;
            for (int l = 0; l < 32; l++) {
              const int q = (j & 1) ? b[16 + 32 * (j >> 1) + l] >> 4 : b[16 + 32 * (j >> 1) + l] & 15;
              y[32 * j + l] = d1 * (float)q - m1;
            }
          }
          break;
        }
        case QUANT_Q6_K: {
          const float d = half_value((unsigned short)(b[208] | b[209] << 8));
          for (int e = 0; e < 256; e++) {
            const int n = e >> 7, qq = (e & 127) >> 5, l = e & 31;
            const int lowbits = (b[64 * n + l + (qq & 1) * 32] >> ((qq >> 1) * 4)) & 15;
            const int highbits = (b[128 + 32 * n + l] >> (2 * qq)) & 3;
            y[e] = d * (float)(signed char)b[192 + 8 * n + (l >> 4) + 2 * qq] * (float)((lowbits | (highbits << 4)) - 32);
          }
          break;
        }
      }
    }
}
