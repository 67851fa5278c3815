#include "reference/silu_mul.h"
#include <math.h>

void ref_silu_mul(const float *gu, float *out, int64_t T, int64_t I) {
  for (int64_t t = 0; t < T; t++) {
    const float *g = gu + t * 2 * I;
    const float *u = g + I;
    for (int64_t i = 0; i < I; i++) {
      double z = g[i];
      out[t * I + i] = (float)(z / (1.0 + exp(-z)) * (double)u[i]);
    }
  }
}
