/* argmax: the index of the maximum of x[N] (dtype KLAB_DT_F32 or KLAB_DT_BF16), lowest index on ties; a NaN
 * counts as the maximum and the first NaN wins (torch.argmax semantics, reference/argmax.h). The index is
 * written to *out_index (device int32). 1 <= N <= 2^31-1.
 *
 * workspace: argmax_workspace_bytes(N) bytes of device memory (0 for N up to KLAB_ARGMAX_ONE_BLOCK_MAX_N:
 * one block does it all). Above that the optimized variant runs one kernel whose blocks leave (value,
 * index) partials in the workspace; the last block to finish (an atomic ticket) reduces them. The launcher
 * zeroes the ticket counter with a 4-byte cudaMemsetAsync before each launch, so the workspace needs no
 * initialisation by the caller and a garbage or aborted workspace cannot corrupt the next call. No host
 * synchronisation; CUDA-graph capturable. The workspace must not be shared by launches that can overlap. */
#ifndef KLAB_KERNELS_ARGMAX_H
#define KLAB_KERNELS_ARGMAX_H
#include <stddef.h>
#include <stdint.h>
#include "harness/klab.h"
#ifdef __cplusplus
extern "C" {
#endif

/* Up to this N one block scans everything: the single-block latency beats a grid plus the cross-block step. */
#define KLAB_ARGMAX_ONE_BLOCK_MAX_N 8192
/* Upper bound on the optimized variant's grid (the partials the workspace holds). */
#define KLAB_ARGMAX_MAX_BLOCKS 1024

size_t argmax_workspace_bytes(int64_t N);
int argmax_naive(const void *x, klab_dtype dtype, int64_t N, int32_t *out_index, void *workspace,
                 size_t workspace_bytes, cudaStream_t stream, klab_err *err);
int argmax_optimized(const void *x, klab_dtype dtype, int64_t N, int32_t *out_index, void *workspace,
                     size_t workspace_bytes, cudaStream_t stream, klab_err *err);
#ifdef __cplusplus
}
#endif
#endif
