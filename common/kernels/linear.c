/*
 * Matrix products out (M, N) (+)= x (M, K) @ w (N, K)^T over weights repacked in panels
 * (linear.h). At decode time M is the number of sequences in a step, so a product reads every
 * weight once and is bound by memory bandwidth: storing 16-bit checkpoints as 16 bits halves
 * the bytes read per token. A tile broadcasts one x value against 32 outputs' weights, so there
 * are no horizontal sums and each weight loaded serves MR rows of x.
 *
 * The kernel is instantiated per instruction set (AVX-512, AVX2 + FMA, portable) and per
 * weight dtype from linear-tile.h (through linear-dtypes.h); the widest instruction set the CPU
 * has is picked at run time.
 */
#include "linear.h"
#include <stdlib.h>
#include <string.h>

typedef float vf16 __attribute__((vector_size(64)));
typedef float uvf16 __attribute__((vector_size(64), aligned(4)));
typedef unsigned short vu16 __attribute__((vector_size(32), aligned(2)));
typedef unsigned int vu32 __attribute__((vector_size(64)));
typedef _Float16 vh16 __attribute__((vector_size(32), aligned(2)));
#define V vf16

#define LOAD_F32(p) (*(const uvf16 *)(p))
#define LOAD_BF16(p) ((vf16)(__builtin_convertvector(*(const vu16 *)(p), vu32) << 16))
#define LOAD_F16(p) (__builtin_convertvector(*(const vh16 *)(p), vf16))

#pragma GCC push_options
#pragma GCC target("avx512f,fma,f16c")
#define ISA avx512
#define MR 8
#define NP 3
#include "linear-dtypes.h"
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#define ISA avx2
#define MR 2
#define NP 2
#include "linear-dtypes.h"
#pragma GCC pop_options

#define ISA generic
#define MR 2
#define NP 2
#include "linear-dtypes.h"

typedef void (*panels_fn)(const struct linear_job *, long, long);

/* [isa][dtype] */
static const panels_fn kernels[3][3] = {
    {panels_avx512_f32, panels_avx512_bf16, panels_avx512_f16},
    {panels_avx2_f32, panels_avx2_bf16, panels_avx2_f16},
    {panels_generic_f32, panels_generic_bf16, panels_generic_f16},
};
static const char *const isa_names[3] = {"avx512", "avx2", "generic"};

/*
 * The widest instruction set the CPU has; BORA_KERNELS_ISA=avx2 or generic asks for a narrower
 * one (the tests run every instantiation this way on a machine that has AVX-512).
 */
static int isa_index(void) {
  static int index = -1;
  if (index < 0) {
    __builtin_cpu_init();
    const int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    const char *wanted = getenv("BORA_KERNELS_ISA");
    if (wanted != 0 && strcmp(wanted, "generic") == 0) index = 2;
    else if (wanted != 0 && strcmp(wanted, "avx2") == 0 && avx2) index = 1;
    else if (__builtin_cpu_supports("avx512f")) index = 0;
    else index = avx2 ? 1 : 2;
  }
  return index;
}

const char *linear_isa(void) { return isa_names[isa_index()]; }

long linear_packed_length(long N, long K) { return (N + PANEL - 1) / PANEL * K * PANEL; }

/* Panel by panel: a panel's K x 16 block (at most a few hundred KiB) stays in cache while its 16 rows are read in order. */
#define PACK_LOOP(T)                                                                 \
  do {                                                                               \
    const T *src_ = src;                                                             \
    T *dst_ = dst;                                                                   \
    for (long p = n0 / PANEL; p * PANEL < n1; p++) {                                 \
      const long first = p * PANEL > n0 ? p * PANEL : n0;                            \
      const long last = (p + 1) * PANEL < n1 ? (p + 1) * PANEL : n1;                 \
      T *panel = dst_ + p * K * PANEL;                                               \
      for (long n = first; n < last; n++) {                                          \
        const T *row = src_ + n * K;                                                 \
        T *lane = panel + n % PANEL;                                                 \
        for (long k = 0; k < K; k++) lane[k * PANEL] = row[k];                       \
      }                                                                              \
    }                                                                                \
  } while (0)

void linear_pack(const void *src, void *dst, enum weight_dtype dtype, long K, long n0, long n1) {
  if (dtype == WEIGHT_F32) PACK_LOOP(unsigned int);
  else PACK_LOOP(unsigned short);
}

void linear_panels(const struct linear_job *job, long p0, long p1) { kernels[isa_index()][job->dtype](job, p0, p1); }
