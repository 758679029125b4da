#ifndef BORA_QUANT_Q8_H
#define BORA_QUANT_Q8_H

/*
 * Activations quantized to 8 bits for the integer-dot quantized kernels (quant-q8.c): each row of
 * x is cut into 32-value groups, and each group is stored as int8 values q and one float scale d
 * with x ~= d * q (d = max |x| / 127, q = round(x / d), llama.cpp's q8 activations). Lanes are
 * 4 consecutive values; per lane the buffer also keeps the group scale and the sum of the 4 q.
 * Rows are padded with zeros to a multiple of 64 values (Kp).
 */
#include "quant.h"

struct quant_x8 {
  signed char *q; /* (M, Kp) */
  float *d; /* (M, Kp / 4): each lane's group scale */
  int *s; /* (M, Kp / 4): each lane's sum of its 4 q */
  float *ds; /* (M, Kp / 4): d * s (Q4_K's mins) */
  long Kp;
};

/* Quantizes x (M, K) into p's buffers (allocated here); 0 when out of memory. Deterministic. */
int quant_x8_prepare(struct quant_x8 *p, const float *x, long M, long K);
void quant_x8_free(struct quant_x8 *p);

/* The integer-dot kernel: output columns [n0, n1) of job (whose x8 is prepared) for every row. */
void quant_q8_rows(const struct quant_job *job, long n0, long n1);

#endif
