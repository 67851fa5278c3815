#include "reference/add_rmsnorm.h"
#include <math.h>
#include "harness/bf16.h"

/* The residual add is one float32 addition per element (r = r + x rounded to float), exactly what a
 * GPU kernel holding the residual stream in float32 does; the norm then follows ref_rmsnorm: sum of
 * squares and scaling in float64, one rounding to float at the end. */
void ref_add_rmsnorm(float *r, const float *x, const uint16_t *w, float *y, int64_t T, int64_t H, float eps) {
  for (int64_t t = 0; t < T; t++) {
    float *rr = r + t * H;
    const float *xr = x + t * H;
    double ss = 0.0;
    for (int64_t i = 0; i < H; i++) {
      rr[i] = rr[i] + xr[i];
      ss += (double)rr[i] * (double)rr[i];
    }
    double inv = 1.0 / sqrt(ss / (double)H + (double)eps);
    float *yr = y + t * H;
    for (int64_t i = 0; i < H; i++) yr[i] = (float)((double)rr[i] * inv * (double)klab_bf16_to_float(w[i]));
  }
}
