/* gemm: C[M,N] = A[M,K] . W[N,K]^T; bf16 in, fp32 accumulate, bf16 out; all row-major (W is the Hugging
 * Face Linear [out, in] layout). The prefill projections: M = prompt tokens, N = output features,
 * K = input features. docs/ops/gemm.md describes the variants and what each optimization bought. */
#ifndef KLAB_KERNELS_GEMM_H
#define KLAB_KERNELS_GEMM_H
#include <stddef.h>
#include <stdint.h>
#include "harness/klab.h"
#ifdef __cplusplus
extern "C" {
#endif

/* Device workspace every gemm_* launcher accepts for this shape (the vendor paths use it; the lab's own
 * kernels need none). Passing less (or NULL) is allowed: cuBLAS then uses its own. */
size_t gemm_workspace_bytes(int64_t M, int64_t N, int64_t K);

/* Shared-memory tiled CUDA-core kernel, fp32 accumulation: the correctness baseline. Any M, N, K >= 1. */
int gemm_naive(const uint16_t *A, const uint16_t *W, uint16_t *C, int64_t M, int64_t N, int64_t K,
               void *workspace, size_t workspace_bytes, cudaStream_t stream, klab_err *err);

/* Tensor cores through mma.sync m16n8k16 + ldmatrix, cp.async 4-stage pipeline, 128x128x32 block tile.
 * Needs K % 8 == 0 and 16-byte aligned A and W (16-byte cp.async rows); any M, N. */
int gemm_mma(const uint16_t *A, const uint16_t *W, uint16_t *C, int64_t M, int64_t N, int64_t K,
             void *workspace, size_t workspace_bytes, cudaStream_t stream, klab_err *err);

/* Hopper (sm_90a): wgmma + TMA + mbarrier ring, one producer warpgroup and two consumer warpgroups,
 * persistent over the SMs; 128-row tiles of width 80, 128, 160, 192 or 256 chosen to minimise estimated
 * waves x tile cost, or 64 x 160 tiles (one consumer warpgroup) where that picks 80 and M <= 512
 * (docs/ops/gemm.md); C leaves through shared memory and TMA stores when N % 8 == 0 and C is 16-byte
 * aligned (else direct masked stores). Needs K % 8 == 0 and 16-byte aligned A and W (TMA row strides and
 * addresses); any M, N; tails are zero-filled by the TMA loads and clipped or masked in the store. */
int gemm_optimized(const uint16_t *A, const uint16_t *W, uint16_t *C, int64_t M, int64_t N, int64_t K,
                   void *workspace, size_t workspace_bytes, cudaStream_t stream, klab_err *err);

/* The `optimized` kernel at a fixed tile of tile_m x tile_n: 128 x (80, 128, 160, 192 or 256), or 64 x 160 (one
 * consumer warpgroup); others are rejected. For measuring the tiles against each other. Same shape rules and
 * alignment as gemm_optimized. */
int gemm_wgmma_tile(const uint16_t *A, const uint16_t *W, uint16_t *C, int64_t M, int64_t N, int64_t K, int tile_m, int tile_n,
                    void *workspace, size_t workspace_bytes, cudaStream_t stream, klab_err *err);

/* gemm_optimized's kernel and tile width, launched as 2-CTA clusters: the two CTAs of a cluster compute
 * vertically adjacent tiles and each loads half of their shared W tile, TMA-multicast into both (a third
 * less L2->SM traffic per tile pair). Same shape rules and alignment as gemm_optimized; no workspace. */
int gemm_wgmma_mc2(const uint16_t *A, const uint16_t *W, uint16_t *C, int64_t M, int64_t N, int64_t K,
                   void *workspace, size_t workspace_bytes, cudaStream_t stream, klab_err *err);

/* C[M,N] = A[M,K] . W[N,K]^T for skinny A (M = 1..16, decode batches) on the `optimized` kernel with the roles
 * swapped: W is the 64-row wgmma operand streamed through the TMA ring (N / 64 tiles), A one 16-row operand
 * (rows >= M zero-filled), and the [N x M] result is stored transposed (m64n16k16). Configurations:
 *   resident 1, k_split 1, max_stages 16: A loaded once per CTA into shared memory (K <= KLAB_GEMM_SKINNY_RESIDENT_MAX_K),
 *     the ring (11 stages of 8 KiB) carries only W;
 *   resident 0, k_split 1, max_stages 16 or 10: A reloaded with every k-block of W (stages of 10 KiB);
 *   resident 0, k_split 2, max_stages 16: each tile's k-blocks split over a cluster of 2 CTAs (2 x N / 64 CTAs), the
 *     partial tiles added in the first CTA's shared memory (a fixed order: deterministic).
 * Others are refused. Same shape rules and alignment as gemm_optimized; M > 16 is refused. */
#define KLAB_GEMM_SKINNY_RESIDENT_MAX_K 4096 /* 64 k-blocks of a 16-row operand: 128 KiB of shared memory */
#define KLAB_GEMM_SKINNY_TILE_ROWS 64        /* rows of W per tile (one CTA, or one cluster with a k split) */
int gemm_wgmma_skinny(const uint16_t *A, const uint16_t *W, uint16_t *C, int64_t M, int64_t N, int64_t K, int resident, int k_split,
                      int max_stages, cudaStream_t stream, klab_err *err);

/* The faster of cuBLAS (cublasGemmEx) and cuBLASLt (heuristic's first algorithm) for this shape,
 * decided once per shape by timing both on the stream (3 launches each; the host waits for them). A
 * call made while the stream is being captured into a graph, for a shape not yet decided, uses cuBLASLt
 * and decides nothing (timing is impossible inside a capture). */
int gemm_vendor(const uint16_t *A, const uint16_t *W, uint16_t *C, int64_t M, int64_t N, int64_t K,
                void *workspace, size_t workspace_bytes, cudaStream_t stream, klab_err *err);

/* Shape rules of the tensor-core variants, shared by supports() and the launchers: 1 when the shape is
 * runnable, else 0 with the reason. Pointer alignment is checked by the launchers. */
int gemm_mma_supports(int64_t M, int64_t N, int64_t K, char *why, size_t why_len);
/* Also declines devices other than compute capability 9.0 (wgmma/TMA need sm_90a). */
int gemm_optimized_supports(int64_t M, int64_t N, int64_t K, char *why, size_t why_len);

#ifdef __cplusplus
}
#endif
#endif
