#ifndef BORA_LINEAR_H
#define BORA_LINEAR_H

/*
 * Weights of a linear layer, (N, K) in Hugging Face's [out, in] layout, repacked into column
 * panels: panel p holds output rows [16p, 16p + 16) as K groups of 16 values (k-major), the last
 * panel zero-padded. Stored in the checkpoint's precision; products are computed in float32
 * (widening bf16 / f16 to float32 is exact, so the results are those of the float32 weights).
 */
#define PANEL 16

enum weight_dtype { WEIGHT_F32 = 0, WEIGHT_BF16 = 1, WEIGHT_F16 = 2 };

struct linear_job {
  const float *x; /* (M, K) */
  const void *panels; /* (ceil(N / PANEL), K, PANEL) of dtype */
  enum weight_dtype dtype;
  float *out; /* (M, N) */
  long M, N, K;
  int accumulate; /* out += instead of out = */
};

/* Values a packed (N, K) matrix takes. */
long linear_packed_length(long N, long K);

/* Repacks src (N, K) row-major into dst panels; element size from dtype (2 or 4 bytes). */
void linear_pack(const void *src, void *dst, enum weight_dtype dtype, long K, long n0, long n1);

/* Computes output columns in panels [p0, p1) for every row of x. Thread-safe. */
void linear_panels(const struct linear_job *job, long p0, long p1);

/* Name of the instruction set the kernel uses on this CPU. */
const char *linear_isa(void);

#endif
