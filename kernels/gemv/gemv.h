/* gemv: y[M,N] = x[M,K] . W[N,K]^T, W bf16 row-major (Hugging Face Linear [out, in]), x/y bf16,
 * fp32 accumulation, M = 1..16 (batch-1 decode is M = 1). */
#ifndef KLAB_KERNELS_GEMV_H
#define KLAB_KERNELS_GEMV_H
#include <stdint.h>
#include "harness/klab.h"
#ifdef __cplusplus
extern "C" {
#endif
#define KLAB_GEMV_MAX_M 16

int gemv_naive(const uint16_t *x, const uint16_t *W, uint16_t *y, int64_t M, int64_t N, int64_t K,
               cudaStream_t stream, klab_err *err);
int gemv_optimized(const uint16_t *x, const uint16_t *W, uint16_t *y, int64_t M, int64_t N, int64_t K,
                   cudaStream_t stream, klab_err *err);
/* Vendor baselines. workspace may be NULL (cuBLAS then uses its own). */
int gemv_cublas(const uint16_t *x, const uint16_t *W, uint16_t *y, int64_t M, int64_t N, int64_t K,
                void *workspace, size_t workspace_bytes, cudaStream_t stream, klab_err *err);
int gemv_cublaslt(const uint16_t *x, const uint16_t *W, uint16_t *y, int64_t M, int64_t N, int64_t K,
                  void *workspace, size_t workspace_bytes, cudaStream_t stream, klab_err *err);
#define KLAB_GEMV_VENDOR_WORKSPACE (32u << 20)
#ifdef __cplusplus
}
#endif
#endif
