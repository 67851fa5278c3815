/* rmsnorm: y[t,:] = x[t,:] / sqrt(mean(x[t,:]^2) + eps) * w, bf16 in/out, fp32 math.
 * x, y: [T, H] bf16 (row-major), w: [H] bf16. Launchers enqueue on stream and check their launch. */
#ifndef KLAB_KERNELS_RMSNORM_H
#define KLAB_KERNELS_RMSNORM_H
#include <stdint.h>
#include "harness/klab.h"
#ifdef __cplusplus
extern "C" {
#endif
#define KLAB_RMSNORM_EPS 1e-6f /* Qwen3's rms_norm_eps */

int rmsnorm_naive(const uint16_t *x, const uint16_t *w, uint16_t *y, int64_t T, int64_t H, float eps,
                  cudaStream_t stream, klab_err *err);
int rmsnorm_optimized(const uint16_t *x, const uint16_t *w, uint16_t *y, int64_t T, int64_t H, float eps,
                      cudaStream_t stream, klab_err *err);
#ifdef __cplusplus
}
#endif
#endif
