/* CPU reference: out[t,i] = silu(g[t,i]) * u[t,i], silu(z) = z / (1 + exp(-z)), from the fused
 * gate|up projection output gu[t, 0:I] = gate, gu[t, I:2I] = up. float64 math. */
#ifndef KLAB_REF_SILU_MUL_H
#define KLAB_REF_SILU_MUL_H
#include <stdint.h>
/* gu: [T, 2I] float; out: [T, I] float. */
void ref_silu_mul(const float *gu, float *out, int64_t T, int64_t I);
#endif
