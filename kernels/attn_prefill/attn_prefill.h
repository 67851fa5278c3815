/* attn_prefill: causal grouped-query attention over a chunk of T prompt tokens (the prefill step).
 *
 * q   [T, HQ, D]                  bf16, normed + roped; token t sits at position p0 + t
 * k_cache, v_cache [HKV, cache_stride, D] bf16, positions 0 .. p0+T-1 filled (cache_stride >= p0 + T)
 * out [T, HQ, D]                  bf16
 * Causal: query t attends to cache positions 0 .. p0+t. Query head h uses KV head h / (HQ/HKV).
 * scale = 1/sqrt(D); softmax in fp32 (online in the optimized variant).
 *
 * Launchers enqueue on stream, check their launches and return 0, or -1 with err filled (bad shape,
 * misaligned pointer, too little workspace). Neither reads a cache position >= p0 + T. */
#ifndef KLAB_KERNELS_ATTN_PREFILL_H
#define KLAB_KERNELS_ATTN_PREFILL_H
#include <stddef.h>
#include <stdint.h>
#include "harness/klab.h"
#ifdef __cplusplus
extern "C" {
#endif

/* The naive variant keeps the fp32 scores of a chunk of query rows (all heads) in the workspace; the
 * chunk is sized to stay under this many bytes (at least one query row is always taken). */
#define ATTN_PREFILL_NAIVE_WORKSPACE_CAP ((size_t)256 << 20)
/* The naive variant declines shapes whose single query row of scores (HQ * (P0+T) floats) exceeds this. */
#define ATTN_PREFILL_NAIVE_ROW_LIMIT ((size_t)1 << 30)
/* Head dims the naive variant handles (q is staged in shared memory as fp32). */
#define ATTN_PREFILL_NAIVE_MAX_D 1024
/* The only head dim the optimized variant is compiled for (every Qwen3 model uses 128). */
#define ATTN_PREFILL_OPT_HEAD_DIM 128

/* Workspace bytes the op needs for this shape: the naive variant's score buffer (the optimized variant
 * needs none, so this is the most either variant uses). Capped near ATTN_PREFILL_NAIVE_WORKSPACE_CAP. */
size_t attn_prefill_workspace_bytes(int64_t T, int64_t p0, int64_t HQ, int64_t HKV, int64_t D);

/* naive: one block per (query row, head); scores of a chunk of rows materialized in the workspace,
 * fp32 softmax, fp32 P.V. Any D up to ATTN_PREFILL_NAIVE_MAX_D. */
int attn_prefill_naive(const uint16_t *q, const uint16_t *k_cache, const uint16_t *v_cache, uint16_t *out,
                       int64_t T, int64_t p0, int64_t HQ, int64_t HKV, int64_t D, int64_t cache_stride,
                       void *workspace, size_t workspace_bytes, cudaStream_t stream, klab_err *err);

/* optimized: FlashAttention-2 style on mma.sync m16n8k16 (bf16 in, fp32 accumulate); D must be 128;
 * q, k_cache, v_cache, out 16-byte aligned. The workspace is not used (may be NULL). */
int attn_prefill_optimized(const uint16_t *q, const uint16_t *k_cache, const uint16_t *v_cache, uint16_t *out,
                           int64_t T, int64_t p0, int64_t HQ, int64_t HKV, int64_t D, int64_t cache_stride,
                           void *workspace, size_t workspace_bytes, cudaStream_t stream, klab_err *err);

/* The optimized kernel as it was before one of its steps, for measuring what each step bought
 * (docs/ops/attn_prefill.md; the `undo_*` variants). One bit at a time; 0 is `optimized`. */
enum {
  ATTN_PREFILL_UNDO_ROWS128 = 1,        /* 64-row blocks at every shape (no 128-row blocks) */
  ATTN_PREFILL_UNDO_GQA_SHARING = 2,    /* a block per query head: each K/V tile serves one head, not the group */
  ATTN_PREFILL_UNDO_CAUSAL_SKIP = 4,    /* every block visits all P0+T keys, every tile masked */
  ATTN_PREFILL_UNDO_DIAGONAL_MASK = 8,  /* causal tiles skipped per block, but every tile masked, no per-warp skip */
  ATTN_PREFILL_UNDO_HEAVY_FIRST = 16,   /* blocks in row order, the lightest first */
  ATTN_PREFILL_UNDO_PREFETCH = 32,      /* no double buffering: a tile is loaded, waited for, then computed */
};
/* attn_prefill_optimized with `undo` (one ATTN_PREFILL_UNDO_* bit, or 0); other values are refused. */
int attn_prefill_optimized_undo(const uint16_t *q, const uint16_t *k_cache, const uint16_t *v_cache, uint16_t *out,
                                int64_t T, int64_t p0, int64_t HQ, int64_t HKV, int64_t D, int64_t cache_stride,
                                void *workspace, size_t workspace_bytes, unsigned undo, cudaStream_t stream, klab_err *err);

#ifdef __cplusplus
}
#endif
#endif
