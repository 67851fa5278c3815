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
/* Candidate configurations of the optimized kernels, registered as EXTRA variants so that one benchmark
 * compares them on every shape (docs/ops/gemv.md, "Round 4"); gemv_optimized dispatches to one of them per
 * M. Same contract as gemv_optimized, except that none has a scalar path: each rejects (-1, with the reason)
 * K % 8 != 0, x or W not 16-byte aligned, and the limits below, which op.c's supports() declines first.
 *   v3      the previous gemv_optimized (split-K CUDA-core M = 1, x-as-A mma.sync M >= 2), kept as baseline
 *   cc      CUDA cores, warp per row, persistent grid, next stage of W prefetched into registers; x via L1
 *   cc_xs   cc with x staged once per block in shared memory
 *   cc_xs_b4  cc_xs with 4 vectors per lane per stage and 4 blocks per SM (more warps, less ILP)
 *   mma     mma.sync with 16 rows of W as the A operand, split-K over the 8 warps of a block, persistent
 *           grid, next stage prefetched; x (B operand) via L1
 *   mma_pf  mma with an L2::256B prefetch hint on the W loads
 *   mma_xs  mma_pf with x staged once per block in shared memory (M*(K+8)*2 <= 40 KiB; 32 KiB for M > 8)
 * and, registered from op.c, `wgmma` / `wgmma_xs`: gemm_wgmma_skinny (kernels/gemm/gemm.h), the Hopper gemm
 * kernel computing y^T = W . x^T with W as 64-row tiles streamed by TMA and x one 16-row operand (reloaded per
 * k-block, or resident in shared memory for K <= 4096); gemv_optimized takes wgmma_xs at M >= 9, K <= 3072,
 * N > 4096 on sm_90a. */
#define KLAB_GEMV_CC_MAX_M 4            /* cc, cc_xs: M fma chains per weight; beyond 4 the FMA issue rate binds */
#define KLAB_GEMV_CC_B4_MAX_M 2         /* cc_xs_b4: 64 registers per thread */
/* x staged in shared memory within the default 48 KiB per block (static + dynamic; no cudaFuncSetAttribute):
 * cc_xs*: M*K*2 bytes; mma_xs: M*(K+8)*2 bytes beside its 8 KiB (M <= 8) or 16 KiB (M > 8) of partial sums. */
#define KLAB_GEMV_XS_MAX_BYTES 49152
#define KLAB_GEMV_MMA_XS_MAX_BYTES(m) (KLAB_GEMV_XS_MAX_BYTES - ((m) <= 8 ? 8192 : 16384))
int gemv_v3(const uint16_t *x, const uint16_t *W, uint16_t *y, int64_t M, int64_t N, int64_t K, cudaStream_t stream, klab_err *err);
int gemv_cc(const uint16_t *x, const uint16_t *W, uint16_t *y, int64_t M, int64_t N, int64_t K, cudaStream_t stream, klab_err *err);
int gemv_cc_xs(const uint16_t *x, const uint16_t *W, uint16_t *y, int64_t M, int64_t N, int64_t K, cudaStream_t stream, klab_err *err);
int gemv_cc_xs_b4(const uint16_t *x, const uint16_t *W, uint16_t *y, int64_t M, int64_t N, int64_t K, cudaStream_t stream, klab_err *err);
int gemv_mma(const uint16_t *x, const uint16_t *W, uint16_t *y, int64_t M, int64_t N, int64_t K, cudaStream_t stream, klab_err *err);
int gemv_mma_xs(const uint16_t *x, const uint16_t *W, uint16_t *y, int64_t M, int64_t N, int64_t K, cudaStream_t stream, klab_err *err);
int gemv_mma_pf(const uint16_t *x, const uint16_t *W, uint16_t *y, int64_t M, int64_t N, int64_t K, cudaStream_t stream, klab_err *err);
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
