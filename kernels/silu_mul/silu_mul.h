/* silu_mul: out[t,i] = silu(gu[t,i]) * gu[t,I+i], silu(z) = z / (1 + exp(-z)). gu [T,2I] bf16 is the fused
 * gate|up projection output (gate in columns 0..I-1, up in I..2I-1); out [T,I] bf16; fp32 math with an
 * accurate expf. Launchers enqueue on stream and check their launches; bad arguments (dims < 1, T above
 * 2^31-1, NULL pointers) are rejected with a message. */
#ifndef KLAB_KERNELS_SILU_MUL_H
#define KLAB_KERNELS_SILU_MUL_H
#include <stdint.h>
#include "harness/klab.h"
#ifdef __cplusplus
extern "C" {
#endif

int silu_mul_naive(const uint16_t *gu, uint16_t *out, int64_t T, int64_t I, cudaStream_t stream, klab_err *err);
int silu_mul_optimized(const uint16_t *gu, uint16_t *out, int64_t T, int64_t I, cudaStream_t stream, klab_err *err);
#ifdef __cplusplus
}
#endif
#endif
