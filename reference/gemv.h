/* CPU reference: y[M,N] = x[M,K] . W[N,K]^T (Hugging Face Linear layout, W row-major [out, in]).
 * float64 accumulation. Also the reference of gemm (same math at large M). */
#ifndef KLAB_REF_GEMV_H
#define KLAB_REF_GEMV_H
#include <stdint.h>
/* x: [M,K] float; W: [N,K] bf16 bits; y: [M,N] float (must not alias x). */
void ref_gemv(const float *x, const uint16_t *W, float *y, int64_t M, int64_t N, int64_t K);
#endif
