#include "reference/rmsnorm.h"
#include <math.h>
#include "harness/bf16.h"

void ref_rmsnorm(const float *x, const uint16_t *w, float *y, int64_t rows, int64_t H, float eps) {
#pragma omp parallel for schedule(static) if (rows * H > (1 << 20))
  for (int64_t t = 0; t < rows; t++) {
    const float *xr = x + t * H;
    double ss = 0.0;
    for (int64_t i = 0; i < H; i++) ss += (double)xr[i] * (double)xr[i];
    double inv = 1.0 / sqrt(ss / (double)H + (double)eps);
    float *yr = y + t * H;
    for (int64_t i = 0; i < H; i++) yr[i] = (float)((double)xr[i] * inv * (double)klab_bf16_to_float(w[i]));
  }
}
