/* RMSNorm rows (rms-norm.h): each output element depends only on its own row. */
#include "rms-norm.h"
#include <math.h>

void rms_norm_rows(const float *x, const float *weight, float *out, long width, double eps, long r0, long r1) {
  for (long r = r0; r < r1; r++) {
    const float *row = x + r * width;
    float *dst = out + r * width;
    double sum_squares = 0.0;
    for (long i = 0; i < width; i++) sum_squares += (double)row[i] * (double)row[i];
    const float mean = (float)(sum_squares / (double)width);
    const float inv = (float)(1.0 / sqrt((double)(float)((double)mean + eps)));
    for (long i = 0; i < width; i++) dst[i] = weight[i] * (row[i] * inv);
  }
}
