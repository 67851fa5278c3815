#include "reference/gemv.h"
#include "harness/bf16.h"

void ref_gemv(const float *x, const uint16_t *W, float *y, int64_t M, int64_t N, int64_t K) {
  /* Rows of W are independent: parallel over n when OpenMP is there. Each weight is converted once per
   * row of x; the sum is float64 in k order, so the result does not depend on the thread count. */
#pragma omp parallel for schedule(static) if (N * K * M > (1 << 22))
  for (int64_t n = 0; n < N; n++) {
    const uint16_t *wr = W + n * K;
    for (int64_t m = 0; m < M; m++) {
      const float *xr = x + m * K;
      double acc = 0.0;
      for (int64_t k = 0; k < K; k++) acc += (double)xr[k] * (double)klab_bf16_to_float(wr[k]);
      y[m * N + n] = (float)acc;
    }
  }
}
