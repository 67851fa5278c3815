/* attn_decode: candidate configurations of the optimized kernel, registered as EXTRA variants so that one
 * `klab bench attn_decode` run compares them with `optimized` on every shape (docs/ops/attn_decode.md,
 * "Step 2"). Private to kernels/attn_decode/ (the engine calls attn_decode_optimized only).
 * Same contract as attn_decode_optimized (D = 64 or 128, 16-byte aligned pointers and workspace), each with
 * its own workspace size:
 *   opt_nopf     optimized without the next-tile prefetch (isolates it)
 *   opt_w4       step 1's block shape (4 warps, up to 32 chunks per KV-head tile, ~4 blocks per SM) with the
 *                new tail (direct single-chunk path, one-pass merge)
 *   opt_cluster  the chunks of a KV-head tile form one thread-block cluster (up to 16 blocks) and merge
 *                through distributed shared memory: no workspace state, no counters, no memset. Host ctx
 *                only (ctx_dev must be NULL); needs no workspace (it accepts any, NULL included). */
#ifndef KLAB_KERNELS_ATTN_DECODE_VARIANTS_H
#define KLAB_KERNELS_ATTN_DECODE_VARIANTS_H
#include "kernels/attn_decode/attn_decode.h"
#ifdef __cplusplus
extern "C" {
#endif

size_t attn_decode_opt_nopf_workspace_bytes(int64_t HQ, int64_t HKV, int64_t D, int64_t max_ctx);
size_t attn_decode_opt_w4_workspace_bytes(int64_t HQ, int64_t HKV, int64_t D, int64_t max_ctx);

int attn_decode_opt_nopf(const uint16_t *q, const uint16_t *k_cache, const uint16_t *v_cache, uint16_t *out,
                         const int32_t *ctx_dev, int64_t ctx, int64_t HQ, int64_t HKV, int64_t D, int64_t cache_stride,
                         void *workspace, size_t workspace_bytes, cudaStream_t stream, klab_err *err);
int attn_decode_opt_w4(const uint16_t *q, const uint16_t *k_cache, const uint16_t *v_cache, uint16_t *out,
                       const int32_t *ctx_dev, int64_t ctx, int64_t HQ, int64_t HKV, int64_t D, int64_t cache_stride,
                       void *workspace, size_t workspace_bytes, cudaStream_t stream, klab_err *err);
int attn_decode_opt_cluster(const uint16_t *q, const uint16_t *k_cache, const uint16_t *v_cache, uint16_t *out,
                            const int32_t *ctx_dev, int64_t ctx, int64_t HQ, int64_t HKV, int64_t D, int64_t cache_stride,
                            void *workspace, size_t workspace_bytes, cudaStream_t stream, klab_err *err);

#ifdef __cplusplus
}
#endif
#endif
