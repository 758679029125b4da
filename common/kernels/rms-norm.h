#ifndef BORA_RMS_NORM_H
#define BORA_RMS_NORM_H

/*
 * RMSNorm of rows [r0, r1) of x (rows, width) into out: x * rsqrt(mean(x^2) + eps) * weight,
 * with the same roundings as the engine's reference in TypeScript (the sum of squares in
 * float64, then float32 as transformers computes it), so both give the same bits.
 */
void rms_norm_rows(const float *x, const float *weight, float *out, long width, double eps, long r0, long r1);

#endif
