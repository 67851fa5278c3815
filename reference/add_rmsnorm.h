/* CPU reference: fused residual add + RMSNorm. r += x; y = rmsnorm(r) * w. float64 accumulation. */
#ifndef KLAB_REF_ADD_RMSNORM_H
#define KLAB_REF_ADD_RMSNORM_H
#include <stdint.h>
/* r: [T,H] float, updated in place; x: [T,H] float; w: [H] bf16 bits; y: [T,H] float. */
void ref_add_rmsnorm(float *r, const float *x, const uint16_t *w, float *y, int64_t T, int64_t H, float eps);
#endif
