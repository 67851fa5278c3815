/* attn_decode: the argument checks both launchers share (private to kernels/attn_decode/). */
#ifndef KLAB_KERNELS_ATTN_DECODE_ARGS_H
#define KLAB_KERNELS_ATTN_DECODE_ARGS_H
#include "kernels/attn_decode/attn_decode.h"

/* 0 when the shape and pointers are usable by any variant, else -1 with err naming the variant and shape. */
static inline int attn_decode_check_args(const char *variant, const void *q, const void *k_cache, const void *v_cache,
                                         const void *out, const int32_t *ctx_dev, int64_t ctx, int64_t HQ, int64_t HKV,
                                         int64_t D, int64_t cache_stride, klab_err *err) {
  if (HQ < 1 || HKV < 1 || D < 1 || cache_stride < 1)
    return klab_fail(err, "attn_decode %s: bad shape HQ=%lld HKV=%lld D=%lld cache_stride=%lld (all must be >= 1)", variant,
                     (long long)HQ, (long long)HKV, (long long)D, (long long)cache_stride);
  if (HQ % HKV != 0)
    return klab_fail(err, "attn_decode %s: HQ=%lld is not a multiple of HKV=%lld", variant, (long long)HQ, (long long)HKV);
  if (HQ > 65535)
    return klab_fail(err, "attn_decode %s: HQ=%lld exceeds 65535 heads", variant, (long long)HQ);
  if (cache_stride > KLAB_ATTN_DECODE_MAX_CTX)
    return klab_fail(err, "attn_decode %s: cache_stride=%lld exceeds %d", variant, (long long)cache_stride,
                     KLAB_ATTN_DECODE_MAX_CTX);
  if (!ctx_dev && (ctx < 1 || ctx > cache_stride))
    return klab_fail(err, "attn_decode %s: ctx=%lld outside 1..cache_stride=%lld", variant, (long long)ctx,
                     (long long)cache_stride);
  if (!q || !k_cache || !v_cache || !out)
    return klab_fail(err, "attn_decode %s: NULL tensor pointer (HQ=%lld HKV=%lld D=%lld)", variant, (long long)HQ,
                     (long long)HKV, (long long)D);
  return 0;
}

#ifdef __CUDACC__
/* The context a kernel attends to: the host value, or the device value clamped into the cache (a device value
 * outside it must never make a kernel read outside it). */
static __device__ __forceinline__ int attn_decode_ctx(const int32_t *ctx_dev, int ctx_host, int cache_stride) {
  if (!ctx_dev) return ctx_host;
  const int c = *ctx_dev;
  return c < 0 ? 0 : (c > cache_stride ? cache_stride : c);
}
#endif
#endif
