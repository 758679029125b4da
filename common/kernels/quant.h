#ifndef BORA_QUANT_H
#define BORA_QUANT_H

/*
 * Linear layers over block-quantized weights in ggml's layouts (Q8_0, Q4_0, Q4_K, Q6_K; see
 * common/model/quant-formats.ts for the block layouts): (N, K) row-major, each row K / block
 * elements whole blocks, used as stored (a GGUF's mapped bytes work as they are). Two modes: with
 * job->x8 set (the default, quant-q8.h), integer dot products over x quantized to 8 bits per 32
 * values, as llama.cpp computes; with x8 NULL (BORA_QUANT_ACTIVATIONS=f32), float32 products of
 * the exactly dequantized weights. Either way each output is summed in a fixed order.
 */
enum quant_type { QUANT_Q8_0 = 0, QUANT_Q4_0 = 1, QUANT_Q4_K = 2, QUANT_Q6_K = 3 };

struct quant_job {
  const float *x; /* (M, K) */
  const unsigned char *w; /* (N, K) as blocks */
  enum quant_type type;
  float *out; /* (M, N) */
  long M, N, K;
  int accumulate; /* out += instead of out = */
  const struct quant_x8 *x8; /* x quantized to 8 bits (quant-q8.h): integer dot products; NULL: float32 */
};

/* Bytes of a row of K values, or 0 when K is not whole blocks. */
long quant_row_bytes(enum quant_type type, long K);

/* Weight rows per unit of work: thread splits are multiples of it. */
#define QUANT_ROWS_PER_UNIT 4

/* Computes output columns [n0, n1) for every row of x. Thread-safe. */
void quant_linear_rows(const struct quant_job *job, long n0, long n1);

/* Quantizes rows [r0, r1) of src (rows of K float32 values, or bf16 bits when bf16 != 0). */
void quant_quantize_rows(enum quant_type type, const void *src, int bf16, unsigned char *dst, long K, long r0, long r1);

/* Dequantizes rows [r0, r1) of src into float32 rows. */
void quant_dequantize_rows(enum quant_type type, const unsigned char *src, float *dst, long K, long r0, long r1);

#endif
