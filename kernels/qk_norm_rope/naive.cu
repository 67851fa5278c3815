// qk_norm_rope, naive: one 128-thread block per (token, head) of the qkv row, scalar bf16 loads, a
// shared-memory tree reduction for the head's sum of squares, and every angle evaluated in float64 with
// pow/sin/cos exactly as the reference writes it (slow: each head recomputes D/2 float64 angles). The
// correctness baseline: obviously right.
#include <cuda_bf16.h>
#include <math.h>
#include <stdio.h>
#include "kernels/qk_norm_rope/qk_norm_rope.h"

#define NAIVE_THREADS 128 /* a power of two: the tree reduction halves it */

typedef struct {
  const __nv_bfloat16 *qkv, *q_norm_w, *k_norm_w;
  __nv_bfloat16 *q_out, *k_cache, *v_cache;
  const int32_t *p0_dev; /* NULL: use p0 */
  int64_t p0, HQ, HKV, D, cache_stride;
  double theta;
  float eps;
} naive_params;

// grid.x = token, grid.y = head item: [0, HQ) q heads, [HQ, HQ+HKV) k heads, [HQ+HKV, HQ+2*HKV) v heads,
// which is also the order of the heads inside a qkv row.
__global__ void __launch_bounds__(NAIVE_THREADS) qk_norm_rope_naive_kernel(naive_params p) {
  __shared__ float partial[NAIVE_THREADS];
  const int64_t t = blockIdx.x, item = blockIdx.y;
  const int64_t n_rope = p.HQ + p.HKV, n_items = n_rope + p.HKV, D = p.D, half = D / 2;
  const int64_t pos = (p.p0_dev ? (int64_t)*p.p0_dev : p.p0) + t;
  const bool pos_ok = pos >= 0 && pos < p.cache_stride; /* else: NaN into q_out, no cache write */
  const __nv_bfloat16 *x = p.qkv + (t * n_items + item) * D;

  if (item >= n_rope) { /* v head: copied unchanged into the cache (block-uniform branch) */
    if (!pos_ok) return;
    __nv_bfloat16 *dst = p.v_cache + ((item - n_rope) * p.cache_stride + pos) * D;
    for (int64_t i = threadIdx.x; i < D; i += NAIVE_THREADS) dst[i] = x[i];
    return;
  }

  float ss = 0.f;
  for (int64_t i = threadIdx.x; i < D; i += NAIVE_THREADS) {
    const float v = __bfloat162float(x[i]);
    ss += v * v;
  }
  partial[threadIdx.x] = ss;
  __syncthreads();
  for (int s = NAIVE_THREADS / 2; s > 0; s /= 2) {
    if ((int)threadIdx.x < s) partial[threadIdx.x] += partial[threadIdx.x + s];
    __syncthreads();
  }
  const float inv = rsqrtf(partial[0] / (float)D + p.eps);

  const bool is_q = item < p.HQ;
  if (!is_q && !pos_ok) return; /* a k head at a position outside the cache: nothing may be written */
  const __nv_bfloat16 *w = is_q ? p.q_norm_w : p.k_norm_w;
  __nv_bfloat16 *dst = is_q ? p.q_out + (t * p.HQ + item) * D : p.k_cache + ((item - p.HQ) * p.cache_stride + pos) * D;
  for (int64_t i = threadIdx.x; i < half; i += NAIVE_THREADS) {
    const float x0 = __bfloat162float(x[i]) * inv * __bfloat162float(w[i]);
    const float x1 = __bfloat162float(x[i + half]) * inv * __bfloat162float(w[i + half]);
    const double freq = pow(p.theta, -2.0 * (double)i / (double)D);
    const double a = (double)pos * freq;
    const double c = cos(a), s = sin(a);
    float out0 = (float)((double)x0 * c - (double)x1 * s);
    float out1 = (float)((double)x1 * c + (double)x0 * s);
    if (!pos_ok) out0 = out1 = __int_as_float(0x7fc00000); /* quiet NaN: a broken position must show */
    dst[i] = __float2bfloat16_rn(out0);
    dst[i + half] = __float2bfloat16_rn(out1);
  }
}

extern "C" int qk_norm_rope_naive(const uint16_t *qkv, const uint16_t *q_norm_w, const uint16_t *k_norm_w,
                                  uint16_t *q_out, uint16_t *k_cache, uint16_t *v_cache, const int32_t *p0_dev,
                                  int64_t p0, int64_t T, int64_t HQ, int64_t HKV, int64_t D, int64_t cache_stride,
                                  float theta, float eps, cudaStream_t stream, klab_err *err) {
  if (qk_norm_rope_check_args("naive", qkv, q_norm_w, k_norm_w, q_out, k_cache, v_cache, p0_dev, p0, T, HQ, HKV, D,
                              cache_stride, theta, eps, err))
    return -1;
  naive_params p;
  p.qkv = (const __nv_bfloat16 *)qkv;
  p.q_norm_w = (const __nv_bfloat16 *)q_norm_w;
  p.k_norm_w = (const __nv_bfloat16 *)k_norm_w;
  p.q_out = (__nv_bfloat16 *)q_out;
  p.k_cache = (__nv_bfloat16 *)k_cache;
  p.v_cache = (__nv_bfloat16 *)v_cache;
  p.p0_dev = p0_dev;
  p.p0 = p0;
  p.HQ = HQ, p.HKV = HKV, p.D = D, p.cache_stride = cache_stride;
  p.theta = (double)theta;
  p.eps = eps;
  const dim3 grid((unsigned)T, (unsigned)(HQ + 2 * HKV));
  qk_norm_rope_naive_kernel<<<grid, NAIVE_THREADS, 0, stream>>>(p);
  char ctx[128];
  snprintf(ctx, sizeof ctx, "qk_norm_rope naive T=%lld HQ=%lld HKV=%lld D=%lld", (long long)T, (long long)HQ,
           (long long)HKV, (long long)D);
  KLAB_CHECK_LAUNCH(err, ctx);
  return 0;
}
