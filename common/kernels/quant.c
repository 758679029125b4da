/*
 * Linear layers over block-quantized weights (quant.h), the exact mode (BORA_QUANT_ACTIVATIONS=f32;
 * the default is quant-q8.c's integer dot products, 1.5-1.7x faster per core, docs/benchmarks.md).
 * The weights are widened to float32 in registers, exactly, and multiplied with float32
 * activations. A decode batch (M <= QMR rows) reads each block once and decodes it once per tile; a
 * larger batch (prefill) decodes QNR weight rows into a float32 buffer that every tile of x then
 * reuses. Both paths compute each output with the same operations in the same order (see
 * quant-type.h), so a row's result does not depend on the batch, the split or the path.
 *
 * Instantiated per instruction set like linear.c: AVX-512, AVX2 + FMA, portable.
 */
#include "quant.h"
#include "quant-q8.h"
#include <stdlib.h>
#include <string.h>

/* 64-byte vectors inside the AVX2 and portable instantiations: all inlined, none crosses a call. */
#pragma GCC diagnostic ignored "-Wpsabi"

typedef float vf16q __attribute__((vector_size(64)));
typedef float uvf16q __attribute__((vector_size(64), aligned(4)));
typedef signed char vi8 __attribute__((vector_size(16), aligned(1)));
typedef unsigned char vu8 __attribute__((vector_size(16), aligned(1)));
typedef int vi32 __attribute__((vector_size(64)));
typedef unsigned short vu16 __attribute__((vector_size(16), aligned(1)));
#define V vf16q
#define UV uvf16q

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)

/* IEEE half bits (little-endian at p) -> float32, exactly (subnormals included). */
static inline float half_to_float(const unsigned char *p) {
  const unsigned h = (unsigned)p[0] | ((unsigned)p[1] << 8);
  const unsigned sign = (h & 0x8000u) << 16, exp = (h >> 10) & 31, mant = h & 0x3ff;
  union { unsigned u; float f; } v;
  if (exp == 0) {
    v.f = (float)mant * 0x1p-24f; /* zero or subnormal: exact */
    v.u |= sign;
  } else if (exp == 31) {
    v.u = sign | 0x7f800000u | (mant << 13);
  } else {
    v.u = sign | ((exp + 112) << 23) | (mant << 13);
  }
  return v.f;
}

static inline void store_out(const struct quant_job *job, long m, long n, float value) {
  float *o = job->out + m * job->N + n;
  *o = job->accumulate ? *o + value : value;
}

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,fma")
#define S _avx512
#define QMR 4
#define QNR 4
#include "quant-isa.h"
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define S _avx2
#define QMR 2
#define QNR 4
#include "quant-isa.h"
#pragma GCC pop_options

#define S _generic
#define QMR 2
#define QNR 4
#include "quant-isa.h"

typedef void (*rows_fn)(const struct quant_job *, long, long);

/* [isa][type], isa as linear.c's linear_isa() reports it. */
static const rows_fn quant_kernels[3][4] = {
    {quant_rows_q8_0__avx512, quant_rows_q4_0__avx512, quant_rows_q4_k__avx512, quant_rows_q6_k__avx512},
    {quant_rows_q8_0__avx2, quant_rows_q4_0__avx2, quant_rows_q4_k__avx2, quant_rows_q6_k__avx2},
    {quant_rows_q8_0__generic, quant_rows_q4_0__generic, quant_rows_q4_k__generic, quant_rows_q6_k__generic},
};

extern const char *linear_isa(void);

static int quant_isa_index(void) {
  const char *isa = linear_isa();
  return strcmp(isa, "avx512") == 0 ? 0 : strcmp(isa, "avx2") == 0 ? 1 : 2;
}

static const int block_elements[4] = {32, 32, 256, 256};
static const int block_bytes[4] = {34, 18, 144, 210};

long quant_row_bytes(enum quant_type type, long K) {
  if (K <= 0 || K % block_elements[type] != 0) return 0;
  return K / block_elements[type] * block_bytes[type];
}

void quant_linear_rows(const struct quant_job *job, long n0, long n1) {
  if (n0 >= n1) return;
  if (job->x8 != 0) quant_q8_rows(job, n0, n1);
  else quant_kernels[quant_isa_index()][job->type](job, n0, n1);
}
