/* CPU reference: RMSNorm over rows. y[t,:] = x[t,:] / sqrt(mean(x[t,:]^2) + eps) * w. float64 accumulation. */
#ifndef KLAB_REF_RMSNORM_H
#define KLAB_REF_RMSNORM_H
#include <stdint.h>
/* x, y: [rows, H] float (may alias: in place is allowed); w: [H] bf16 bits. */
void ref_rmsnorm(const float *x, const uint16_t *w, float *y, int64_t rows, int64_t H, float eps);
#endif
