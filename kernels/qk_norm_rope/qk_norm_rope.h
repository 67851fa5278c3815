/* qk_norm_rope: Qwen3's per-head RMSNorm of q and k, RoPE (rotate-half / NeoX layout), and the KV-cache
 * append, in one pass over the fused q|k|v projection output. bf16 in/out, fp32 math, accurate angles.
 *
 * qkv: [T, (HQ + 2*HKV) * D] bf16 rows: HQ q heads, then HKV k heads, then HKV v heads, each D wide.
 * Token t sits at position pos = p0 + t, where p0 = *p0_dev when p0_dev != NULL (decode inside a captured
 * CUDA graph reads it from device memory; the host p0 argument is then ignored) else the host p0.
 *   q_out[t, h, :]       = rope(rmsnorm(q[t, h, :]) * q_norm_w, pos)   q_out: [T, HQ, D]
 *   k_cache[h, pos, :]   = rope(rmsnorm(k[t, h, :]) * k_norm_w, pos)   caches: [HKV, cache_stride, D]
 *   v_cache[h, pos, :]   = v[t, h, :]                                   (head-major, reference/attention.h)
 * rope(x, pos)[i] = x[i] cos a_i - x[i+D/2] sin a_i, rope[i+D/2] = x[i+D/2] cos a_i + x[i] sin a_i,
 * a_i = pos * theta^(-2i/D) (reference/qk_norm_rope.h). Qwen3: theta 1e6, eps 1e-6.
 * Contract: D even, HQ % HKV == 0, 0 <= pos < cache_stride for every token. With a host p0 the launchers
 * check it and refuse; with p0_dev the kernels check it per token and, if it is violated, write NaN into
 * that token's q_out rows (so the error shows downstream) and leave both caches untouched (never a write
 * outside them). Cache positions other than p0..p0+T-1 are not touched.
 * Launchers enqueue on stream and check their launch; 0, or -1 with err filled. */
#ifndef KLAB_KERNELS_QK_NORM_ROPE_H
#define KLAB_KERNELS_QK_NORM_ROPE_H
#include <math.h>
#include <stdint.h>
#include "harness/klab.h"
#ifdef __cplusplus
extern "C" {
#endif
#define KLAB_QK_NORM_EPS 1e-6f      /* Qwen3's rms_norm_eps */
#define KLAB_QWEN3_ROPE_THETA 1e6f  /* Qwen3's rope_theta */
#define KLAB_QK_NORM_ROPE_MAX_ITEMS 65535 /* HQ + 2*HKV: heads of one token (a grid dimension) */

int qk_norm_rope_naive(const uint16_t *qkv, const uint16_t *q_norm_w, const uint16_t *k_norm_w, uint16_t *q_out,
                       uint16_t *k_cache, uint16_t *v_cache, const int32_t *p0_dev, int64_t p0, int64_t T,
                       int64_t HQ, int64_t HKV, int64_t D, int64_t cache_stride, float theta, float eps,
                       cudaStream_t stream, klab_err *err);
int qk_norm_rope_optimized(const uint16_t *qkv, const uint16_t *q_norm_w, const uint16_t *k_norm_w, uint16_t *q_out,
                           uint16_t *k_cache, uint16_t *v_cache, const int32_t *p0_dev, int64_t p0, int64_t T,
                           int64_t HQ, int64_t HKV, int64_t D, int64_t cache_stride, float theta, float eps,
                           cudaStream_t stream, klab_err *err);

/* Candidates measured beside `optimized` (EXTRA variants in op.c; same contract, prototype and refusals).
 * w2s6, w6s2, w12s1 are the optimized vec8 kernel with other block shapes (warps per block x slots of heads
 * per lane; all three cover 48 heads per block at D = 128); v1 is the previous optimized kernel (one warp
 * per head, 4-byte bf16-pair loads), which is also every variant's path where vec8 does not apply. */
int qk_norm_rope_w2s6(const uint16_t *qkv, const uint16_t *q_norm_w, const uint16_t *k_norm_w, uint16_t *q_out,
                      uint16_t *k_cache, uint16_t *v_cache, const int32_t *p0_dev, int64_t p0, int64_t T, int64_t HQ,
                      int64_t HKV, int64_t D, int64_t cache_stride, float theta, float eps, cudaStream_t stream,
                      klab_err *err);
int qk_norm_rope_w6s2(const uint16_t *qkv, const uint16_t *q_norm_w, const uint16_t *k_norm_w, uint16_t *q_out,
                      uint16_t *k_cache, uint16_t *v_cache, const int32_t *p0_dev, int64_t p0, int64_t T, int64_t HQ,
                      int64_t HKV, int64_t D, int64_t cache_stride, float theta, float eps, cudaStream_t stream,
                      klab_err *err);
int qk_norm_rope_w12s1(const uint16_t *qkv, const uint16_t *q_norm_w, const uint16_t *k_norm_w, uint16_t *q_out,
                       uint16_t *k_cache, uint16_t *v_cache, const int32_t *p0_dev, int64_t p0, int64_t T, int64_t HQ,
                       int64_t HKV, int64_t D, int64_t cache_stride, float theta, float eps, cudaStream_t stream,
                       klab_err *err);
/* pipe: persistent blocks owning whole tokens, the next 2 tokens' qkv rows streaming into shared memory by
 * cp.async while the current one is processed (rows <= 14 KB; larger rows take optimized's path). */
int qk_norm_rope_pipe(const uint16_t *qkv, const uint16_t *q_norm_w, const uint16_t *k_norm_w, uint16_t *q_out,
                      uint16_t *k_cache, uint16_t *v_cache, const int32_t *p0_dev, int64_t p0, int64_t T, int64_t HQ,
                      int64_t HKV, int64_t D, int64_t cache_stride, float theta, float eps, cudaStream_t stream,
                      klab_err *err);
int qk_norm_rope_v1(const uint16_t *qkv, const uint16_t *q_norm_w, const uint16_t *k_norm_w, uint16_t *q_out,
                    uint16_t *k_cache, uint16_t *v_cache, const int32_t *p0_dev, int64_t p0, int64_t T, int64_t HQ,
                    int64_t HKV, int64_t D, int64_t cache_stride, float theta, float eps, cudaStream_t stream,
                    klab_err *err);

/* The argument checks both launchers share (variant names the caller in the message). 0 ok, -1 with err. */
static inline int qk_norm_rope_check_args(const char *variant, const uint16_t *qkv, const uint16_t *q_norm_w,
                                          const uint16_t *k_norm_w, const uint16_t *q_out, const uint16_t *k_cache,
                                          const uint16_t *v_cache, const int32_t *p0_dev, int64_t p0, int64_t T,
                                          int64_t HQ, int64_t HKV, int64_t D, int64_t cache_stride, float theta,
                                          float eps, klab_err *err) {
  if (T < 1 || HQ < 1 || HKV < 1 || D < 1 || cache_stride < 1)
    return klab_fail(err, "qk_norm_rope %s: bad shape T=%lld HQ=%lld HKV=%lld D=%lld cache_stride=%lld (all >= 1)",
                     variant, (long long)T, (long long)HQ, (long long)HKV, (long long)D, (long long)cache_stride);
  if (D % 2 != 0) return klab_fail(err, "qk_norm_rope %s: D=%lld must be even (rotate-half RoPE)", variant, (long long)D);
  if (HQ % HKV != 0)
    return klab_fail(err, "qk_norm_rope %s: HQ=%lld not a multiple of HKV=%lld", variant, (long long)HQ, (long long)HKV);
  if (HQ + 2 * HKV > KLAB_QK_NORM_ROPE_MAX_ITEMS)
    return klab_fail(err, "qk_norm_rope %s: HQ + 2*HKV = %lld heads exceeds %d", variant, (long long)(HQ + 2 * HKV),
                     KLAB_QK_NORM_ROPE_MAX_ITEMS);
  if (T > 2147483647) return klab_fail(err, "qk_norm_rope %s: T=%lld exceeds the grid limit", variant, (long long)T);
  if (!qkv || !q_norm_w || !k_norm_w || !q_out || !k_cache || !v_cache)
    return klab_fail(err, "qk_norm_rope %s T=%lld HQ=%lld HKV=%lld D=%lld: NULL tensor pointer", variant, (long long)T,
                     (long long)HQ, (long long)HKV, (long long)D);
  if (!(theta > 0.0f) || !isfinite(theta) || !(eps >= 0.0f) || !isfinite(eps))
    return klab_fail(err, "qk_norm_rope %s: theta=%g must be finite and > 0, eps=%g finite and >= 0", variant,
                     (double)theta, (double)eps);
  if (!p0_dev && (p0 < 0 || p0 > cache_stride - T))
    return klab_fail(err, "qk_norm_rope %s: positions %lld..%lld outside the cache (cache_stride %lld)", variant,
                     (long long)p0, (long long)(p0 + T - 1), (long long)cache_stride);
  return 0;
}
#ifdef __cplusplus
}
#endif
#endif
