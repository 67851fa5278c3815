#include "reference/gemv.h"
#include <stdlib.h>
#include "harness/bf16.h"

void ref_gemv(const float *x, const uint16_t *W, float *y, int64_t M, int64_t N, int64_t K) {
  /* Convert one weight row at a time and reuse it for all M rows of x: W is read once. */
  double *wrow = malloc((size_t)K * sizeof *wrow);
  if (!wrow) abort();
  for (int64_t n = 0; n < N; n++) {
    const uint16_t *wr = W + n * K;
    for (int64_t k = 0; k < K; k++) wrow[k] = (double)klab_bf16_to_float(wr[k]);
    for (int64_t m = 0; m < M; m++) {
      const float *xr = x + m * K;
      double acc = 0.0;
      for (int64_t k = 0; k < K; k++) acc += (double)xr[k] * wrow[k];
      y[m * N + n] = (float)acc;
    }
  }
  free(wrow);
}
