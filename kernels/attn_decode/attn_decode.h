/* attn_decode: attention of one new query token (batch-1 decode) over a bf16 KV cache, causal GQA.
 *
 * q [HQ, D] bf16 (already normed + roped); k_cache, v_cache [HKV, cache_stride, D] bf16 with positions
 * 0..ctx-1 valid (what lies after them is never read); out [HQ, D] bf16. Query head h uses KV head
 * h / (HQ/HKV); scale 1/sqrt(D); fp32 scores, softmax and sums.
 * ctx = *ctx_dev when ctx_dev != NULL (decode inside a captured CUDA graph: the grid is then sized for
 * max_ctx = cache_stride and blocks past ctx do no work; a device value outside [0, cache_stride] is
 * clamped into it, and ctx 0 writes zeros), else the host ctx (1 <= ctx <= cache_stride, checked).
 * Launchers enqueue on stream and check their launches: 0, or -1 with err filled. */
#ifndef KLAB_KERNELS_ATTN_DECODE_H
#define KLAB_KERNELS_ATTN_DECODE_H
#include <stddef.h>
#include <stdint.h>
#include "harness/klab.h"
#ifdef __cplusplus
extern "C" {
#endif

/* naive keeps one value per thread for each of at most 4 x 128 head dims. */
#define KLAB_ATTN_DECODE_NAIVE_MAX_D 512
/* The largest cache_stride (and ctx) the launchers take: positions are 32-bit ints in the kernels. */
#define KLAB_ATTN_DECODE_MAX_CTX (1 << 30)

/* Device workspace the optimized variant needs for any ctx <= max_ctx and cache_stride <= max_ctx (the
 * split-K partials and one arrival counter per KV-head tile; the launcher clears the counters itself when a
 * launch can use them, so the workspace needs no initialisation). 0 for shapes no variant runs. naive needs
 * none (it ignores its workspace). */
size_t attn_decode_workspace_bytes(int64_t HQ, int64_t HKV, int64_t D, int64_t max_ctx);

/* One block per query head, serial over the context with an online softmax (fp32); any D <= 512. */
int attn_decode_naive(const uint16_t *q, const uint16_t *k_cache, const uint16_t *v_cache, uint16_t *out,
                      const int32_t *ctx_dev, int64_t ctx, int64_t HQ, int64_t HKV, int64_t D, int64_t cache_stride,
                      void *workspace, size_t workspace_bytes, cudaStream_t stream, klab_err *err);

/* Split-K flash-decoding: D = 64 or 128 only; q, k_cache, v_cache, out and workspace 16-byte aligned. */
int attn_decode_optimized(const uint16_t *q, const uint16_t *k_cache, const uint16_t *v_cache, uint16_t *out,
                          const int32_t *ctx_dev, int64_t ctx, int64_t HQ, int64_t HKV, int64_t D, int64_t cache_stride,
                          void *workspace, size_t workspace_bytes, cudaStream_t stream, klab_err *err);

/* attn_decode_optimized without the memset of the arrival counters before each launch, for a caller that
 * zeroes the whole workspace once after allocating it: every launch leaves the counters zero again. In a
 * CUDA graph the memset is a node of its own that also breaks a chain of programmatic dependent launches
 * (kernels/common/pdl.h); the engine's decode uses this entry. It also reads ctx_dev and asks L2 for its KV
 * rows before its programmatic-dependent-launch wait: hints only (a value still being written costs bandwidth,
 * not correctness); they pay off where, as in the engine's decode graph, only q and row ctx - 1 come from the
 * kernels before it. */
int attn_decode_optimized_nomemset(const uint16_t *q, const uint16_t *k_cache, const uint16_t *v_cache, uint16_t *out,
                                   const int32_t *ctx_dev, int64_t ctx, int64_t HQ, int64_t HKV, int64_t D,
                                   int64_t cache_stride, void *workspace, size_t workspace_bytes, cudaStream_t stream,
                                   klab_err *err);

#ifdef __cplusplus
}
#endif
#endif
