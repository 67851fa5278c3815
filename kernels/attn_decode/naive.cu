// attn_decode, naive: one block per query head walks the context serially with an online softmax, fp32.
// Thread t owns head dims t, t+128, t+256, t+384 (D <= 512). Per position: partial dot products, a block
// reduction (shuffles + shared memory) that gives every thread the same score, then the running max /
// sum / weighted V update. The correctness baseline: simple enough to be obviously right, and slow (one
// dependent DRAM round trip per position).
#include <cuda_bf16.h>
#include <math.h>
#include "kernels/attn_decode/args.h"
#include "kernels/attn_decode/attn_decode.h"

#define NAIVE_THREADS 128
#define NAIVE_WARPS (NAIVE_THREADS / 32)
#define NAIVE_PER_THREAD (KLAB_ATTN_DECODE_NAIVE_MAX_D / NAIVE_THREADS)

__global__ void __launch_bounds__(NAIVE_THREADS)
attn_decode_naive_kernel(const __nv_bfloat16 *q, const __nv_bfloat16 *k_cache, const __nv_bfloat16 *v_cache,
                         __nv_bfloat16 *out, const int32_t *ctx_dev, int ctx_host, int group, int D, int cache_stride,
                         float scale) {
  __shared__ float warp_sums[NAIVE_WARPS];
  const int head = blockIdx.x, kv_head = head / group;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int ctx = attn_decode_ctx(ctx_dev, ctx_host, cache_stride);
  const __nv_bfloat16 *k_rows = k_cache + (int64_t)kv_head * cache_stride * D;
  const __nv_bfloat16 *v_rows = v_cache + (int64_t)kv_head * cache_stride * D;

  float q_own[NAIVE_PER_THREAD], acc[NAIVE_PER_THREAD];
#pragma unroll
  for (int i = 0; i < NAIVE_PER_THREAD; i++) {
    const int d = threadIdx.x + i * NAIVE_THREADS;
    q_own[i] = d < D ? __bfloat162float(q[(int64_t)head * D + d]) : 0.f;
    acc[i] = 0.f;
  }
  float running_max = -INFINITY, running_sum = 0.f;
  for (int j = 0; j < ctx; j++) {
    const __nv_bfloat16 *k_row = k_rows + (int64_t)j * D, *v_row = v_rows + (int64_t)j * D;
    float partial = 0.f, v_own[NAIVE_PER_THREAD];
#pragma unroll
    for (int i = 0; i < NAIVE_PER_THREAD; i++) {
      const int d = threadIdx.x + i * NAIVE_THREADS;
      v_own[i] = d < D ? __bfloat162float(v_row[d]) : 0.f;  // issued with K's load: one round trip per position
      if (d < D) partial = fmaf(q_own[i], __bfloat162float(k_row[d]), partial);
    }
#pragma unroll
    for (int o = 16; o > 0; o /= 2) partial += __shfl_xor_sync(0xffffffffu, partial, o);
    if (lane == 0) warp_sums[warp] = partial;
    __syncthreads();
    float score = 0.f;
#pragma unroll
    for (int w = 0; w < NAIVE_WARPS; w++) score += warp_sums[w];  // same order in every thread: same value
    __syncthreads();  // warp_sums is rewritten by the next position
    score *= scale;
    const float new_max = fmaxf(running_max, score);
    const float rescale = expf(running_max - new_max);  // 0 at the first position (running_max = -inf)
    const float weight = expf(score - new_max);
    running_sum = running_sum * rescale + weight;
#pragma unroll
    for (int i = 0; i < NAIVE_PER_THREAD; i++) acc[i] = acc[i] * rescale + weight * v_own[i];
    running_max = new_max;
  }
  const float inv_sum = ctx > 0 ? 1.f / running_sum : 0.f;  // ctx 0 (device value) attends to nothing: zeros
#pragma unroll
  for (int i = 0; i < NAIVE_PER_THREAD; i++) {
    const int d = threadIdx.x + i * NAIVE_THREADS;
    if (d < D) out[(int64_t)head * D + d] = __float2bfloat16(acc[i] * inv_sum);
  }
}

extern "C" int attn_decode_naive(const uint16_t *q, const uint16_t *k_cache, const uint16_t *v_cache, uint16_t *out,
                                 const int32_t *ctx_dev, int64_t ctx, int64_t HQ, int64_t HKV, int64_t D,
                                 int64_t cache_stride, void *workspace, size_t workspace_bytes, cudaStream_t stream,
                                 klab_err *err) {
  if (attn_decode_check_args("naive", q, k_cache, v_cache, out, ctx_dev, ctx, HQ, HKV, D, cache_stride, err)) return -1;
  if (D > KLAB_ATTN_DECODE_NAIVE_MAX_D)
    return klab_fail(err, "attn_decode naive: D=%lld exceeds %d (HQ=%lld HKV=%lld)", (long long)D,
                     KLAB_ATTN_DECODE_NAIVE_MAX_D, (long long)HQ, (long long)HKV);
  const float scale = (float)(1.0 / sqrt((double)D));
  attn_decode_naive_kernel<<<(unsigned)HQ, NAIVE_THREADS, 0, stream>>>(
      (const __nv_bfloat16 *)q, (const __nv_bfloat16 *)k_cache, (const __nv_bfloat16 *)v_cache, (__nv_bfloat16 *)out,
      ctx_dev, ctx_dev ? 0 : (int)ctx, (int)(HQ / HKV), (int)D, (int)cache_stride, scale);
  KLAB_CHECK_LAUNCH(err, "attn_decode naive");
  return 0;
}
