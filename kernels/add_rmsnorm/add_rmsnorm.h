/* add_rmsnorm: the residual add fused with the next RMSNorm, bf16 in/out, fp32 math.
 *   r[t,:] = bf16(r[t,:] + x[t,:])          (the residual stream is a bf16 tensor, as in Hugging Face)
 *   y[t,:] = r[t,:] / sqrt(mean(r[t,:]^2) + eps) * w   (the norm of the ROUNDED residual)
 * r (updated in place), x, y: [T, H] bf16 row-major; w: [H] bf16. y must not alias r or x.
 * Launchers enqueue on stream and check their launch; 0, or -1 with err filled. */
#ifndef KLAB_KERNELS_ADD_RMSNORM_H
#define KLAB_KERNELS_ADD_RMSNORM_H
#include <stdint.h>
#include "harness/klab.h"
#ifdef __cplusplus
extern "C" {
#endif
#define KLAB_ADD_RMSNORM_EPS 1e-6f /* Qwen3's rms_norm_eps */

int add_rmsnorm_naive(uint16_t *r, const uint16_t *x, const uint16_t *w, uint16_t *y, int64_t T, int64_t H,
                      float eps, cudaStream_t stream, klab_err *err);
int add_rmsnorm_optimized(uint16_t *r, const uint16_t *x, const uint16_t *w, uint16_t *y, int64_t T, int64_t H,
                          float eps, cudaStream_t stream, klab_err *err);
#ifdef __cplusplus
}
#endif
#endif
