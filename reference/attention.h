/* CPU reference: causal GQA attention (prefill and decode). Query t of T sits at position p0 + t and
 * attends to cache positions 0 .. p0 + t. Query head h uses KV head h / (n_heads / n_kv_heads).
 * scale = 1/sqrt(head_dim); softmax and sums in float64. */
#ifndef KLAB_REF_ATTENTION_H
#define KLAB_REF_ATTENTION_H
#include <stdint.h>
/* q: [T, n_heads, head_dim]; out: [T, n_heads, head_dim];
 * k_cache, v_cache: [n_kv_heads, cache_stride, head_dim] (head-major; positions 0..p0+T-1 filled,
 * cache_stride >= p0 + T). n_heads must be a multiple of n_kv_heads. */
void ref_attention(const float *q, const float *k_cache, const float *v_cache, float *out, int64_t T, int64_t p0,
                   int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, int64_t cache_stride);
#endif
