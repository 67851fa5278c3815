/* embedding: out[t,:] = table[ids[t],:] (a row gather). ids [T] int32 on the device; table [V,H] bf16
 * (row-major, Hugging Face embed_tokens); out [T,H] bf16. An id outside [0,V) is never read: its row of
 * out is written as zeros and *bad_ids (a device int32 the launcher zeroes first with cudaMemsetAsync)
 * counts such ids, so the caller can report them. Launchers enqueue on stream and check their launches;
 * bad arguments (dims < 1, T or V above 2^31-1, NULL pointers) are rejected with a message. */
#ifndef KLAB_KERNELS_EMBEDDING_H
#define KLAB_KERNELS_EMBEDDING_H
#include <stdint.h>
#include "harness/klab.h"
#ifdef __cplusplus
extern "C" {
#endif

int embedding_naive(const int32_t *ids, const uint16_t *table, uint16_t *out, int32_t *bad_ids, int64_t T, int64_t V,
                    int64_t H, cudaStream_t stream, klab_err *err);
int embedding_optimized(const int32_t *ids, const uint16_t *table, uint16_t *out, int32_t *bad_ids, int64_t T,
                        int64_t V, int64_t H, cudaStream_t stream, klab_err *err);

/* Candidates measured beside `optimized` (EXTRA variants in op.c; same contract and prototype):
 *   embedding_vpl4    the optimized segment kernel with 4 vectors per lane per task (smaller tasks, more of them)
 *   embedding_vpl16   ... with 16 vectors per lane per task (H <= 4096 is one task per row)
 *   embedding_cached  optimized without the evict-first hints (__ldcg loads, plain stores): the previous optimized
 *   embedding_v1      the previous optimized kernel: warp per row, 8 vectors per lane per step, capped grid */
int embedding_vpl4(const int32_t *ids, const uint16_t *table, uint16_t *out, int32_t *bad_ids, int64_t T, int64_t V,
                   int64_t H, cudaStream_t stream, klab_err *err);
int embedding_vpl16(const int32_t *ids, const uint16_t *table, uint16_t *out, int32_t *bad_ids, int64_t T, int64_t V,
                    int64_t H, cudaStream_t stream, klab_err *err);
int embedding_cached(const int32_t *ids, const uint16_t *table, uint16_t *out, int32_t *bad_ids, int64_t T, int64_t V,
                     int64_t H, cudaStream_t stream, klab_err *err);
int embedding_v1(const int32_t *ids, const uint16_t *table, uint16_t *out, int32_t *bad_ids, int64_t T, int64_t V,
                 int64_t H, cudaStream_t stream, klab_err *err);
#ifdef __cplusplus
}
#endif
#endif
