// attn_prefill, naive: the correctness baseline. One block per (query row, query head): the row's scores
// against every key it may see are written to the workspace in fp32, a block-wide max and sum give the
// softmax, and each thread then forms one output element as a sum over keys of p * v. Query rows are
// processed in chunks sized so the chunk's score rows (all heads) fit the workspace.
// Slow by design (K is read once per query row, scores go through global memory), but every step is the
// textbook formula in fp32, so it is the variant to trust when the optimized one disagrees.
#include <cuda_bf16.h>
#include <math.h>
#include <stdint.h>
#include "kernels/attn_prefill/attn_prefill.h"

#define NAIVE_THREADS 128
#define NAIVE_WARPS (NAIVE_THREADS / 32)

// Block-wide reductions over the NAIVE_THREADS threads. They end with a barrier, so `partial` can be
// reused at once, and every global/shared write made before the call is visible after it.
static __device__ float block_max(float v, float *partial) {
#pragma unroll
  for (int o = 16; o > 0; o /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = v;
  __syncthreads();
  float r = partial[0];
#pragma unroll
  for (int i = 1; i < NAIVE_WARPS; i++) r = fmaxf(r, partial[i]);
  __syncthreads();
  return r;
}

static __device__ float block_sum(float v, float *partial) {
#pragma unroll
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = v;
  __syncthreads();
  float r = 0.f;
#pragma unroll
  for (int i = 0; i < NAIVE_WARPS; i++) r += partial[i];
  __syncthreads();
  return r;
}

// grid: x = query row within the chunk (token t0 + blockIdx.x), y = query head.
// scores: [rows in chunk][HQ][ctx_max] fp32; this block owns one row of ctx_max of them.
__global__ void __launch_bounds__(NAIVE_THREADS)
attn_prefill_naive_kernel(const __nv_bfloat16 *q, const __nv_bfloat16 *k_cache, const __nv_bfloat16 *v_cache,
                          __nv_bfloat16 *out, int64_t t0, int64_t p0, int64_t HQ, int64_t group, int64_t D,
                          int64_t cache_stride, int64_t ctx_max, float scale, float *scores) {
  extern __shared__ float q_row[];  // D floats: the query row, read by every warp for every key
  __shared__ float partial[NAIVE_WARPS];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t t = t0 + blockIdx.x, h = blockIdx.y;
  const int64_t n_ctx = p0 + t + 1;  // causal: positions 0 .. p0 + t
  const int64_t kv_head = h / group;
  const __nv_bfloat16 *q_src = q + (t * HQ + h) * D;
  const __nv_bfloat16 *k_head = k_cache + kv_head * cache_stride * D;
  const __nv_bfloat16 *v_head = v_cache + kv_head * cache_stride * D;
  float *score_row = scores + ((int64_t)blockIdx.x * HQ + h) * ctx_max;

  for (int64_t d = threadIdx.x; d < D; d += NAIVE_THREADS) q_row[d] = __bfloat162float(q_src[d]);
  __syncthreads();

  // Scores: one warp per key, lanes across the head dim (coalesced K reads), shuffle sum. After the xor
  // reduction every lane holds the full dot product, so every lane's running max is the same.
  float local_max = -INFINITY;
  for (int64_t j = warp; j < n_ctx; j += NAIVE_WARPS) {
    const __nv_bfloat16 *k_row = k_head + j * D;
    float dot = 0.f;
    for (int64_t d = lane; d < D; d += 32) dot += q_row[d] * __bfloat162float(k_row[d]);
#pragma unroll
    for (int o = 16; o > 0; o /= 2) dot += __shfl_xor_sync(0xffffffffu, dot, o);
    const float s = dot * scale;
    if (lane == 0) score_row[j] = s;
    local_max = fmaxf(local_max, s);
  }
  // n_ctx >= 1, so warp 0 saw key 0 and the max is finite.
  const float row_max = block_max(local_max, partial);

  float local_sum = 0.f;
  for (int64_t j = threadIdx.x; j < n_ctx; j += NAIVE_THREADS) {
    const float e = expf(score_row[j] - row_max);
    score_row[j] = e;
    local_sum += e;
  }
  const float row_sum = block_sum(local_sum, partial);  // >= 1: the max element contributes exp(0)
  const float inv_sum = 1.f / row_sum;

  // Output: thread per head-dim element; V reads are coalesced across threads, the weights broadcast.
  for (int64_t d = threadIdx.x; d < D; d += NAIVE_THREADS) {
    float acc = 0.f;
    for (int64_t j = 0; j < n_ctx; j++) acc += score_row[j] * __bfloat162float(v_head[j * D + d]);
    out[(t * HQ + h) * D + d] = __float2bfloat16(acc * inv_sum);
  }
}

// Bytes of one query row of scores for all heads, or 0 if the shape is invalid or that exceeds the limit.
static size_t score_row_bytes(int64_t T, int64_t p0, int64_t HQ) {
  if (T < 1 || p0 < 0 || HQ < 1) return 0;
  const double bytes = (double)HQ * (double)(p0 + T) * sizeof(float);
  if (bytes > (double)ATTN_PREFILL_NAIVE_ROW_LIMIT) return 0;
  return (size_t)bytes;
}

extern "C" size_t attn_prefill_workspace_bytes(int64_t T, int64_t p0, int64_t HQ, int64_t HKV, int64_t D) {
  (void)HKV, (void)D;  // the score buffer depends on the query heads and context only
  const size_t row_bytes = score_row_bytes(T, p0, HQ);
  if (row_bytes == 0) return 0;
  int64_t rows = (int64_t)(ATTN_PREFILL_NAIVE_WORKSPACE_CAP / row_bytes);
  if (rows < 1) rows = 1;  // one row above the cap: still runnable (the row limit bounds it)
  if (rows > T) rows = T;
  return (size_t)rows * row_bytes;
}

extern "C" int attn_prefill_naive(const uint16_t *q, const uint16_t *k_cache, const uint16_t *v_cache, uint16_t *out,
                                  int64_t T, int64_t p0, int64_t HQ, int64_t HKV, int64_t D, int64_t cache_stride,
                                  void *workspace, size_t workspace_bytes, cudaStream_t stream, klab_err *err) {
  if (T < 1 || p0 < 0 || HQ < 1 || HKV < 1 || D < 1)
    return klab_fail(err, "attn_prefill naive: bad shape T=%lld P0=%lld HQ=%lld HKV=%lld D=%lld (need T, HQ, HKV, D >= 1, P0 >= 0)",
                     (long long)T, (long long)p0, (long long)HQ, (long long)HKV, (long long)D);
  if (HQ % HKV != 0)
    return klab_fail(err, "attn_prefill naive: HQ=%lld is not a multiple of HKV=%lld", (long long)HQ, (long long)HKV);
  if (cache_stride < p0 + T)
    return klab_fail(err, "attn_prefill naive: cache_stride=%lld < P0+T=%lld", (long long)cache_stride, (long long)(p0 + T));
  if (D > ATTN_PREFILL_NAIVE_MAX_D)
    return klab_fail(err, "attn_prefill naive: D=%lld above %d", (long long)D, ATTN_PREFILL_NAIVE_MAX_D);
  if (HQ > 65535) return klab_fail(err, "attn_prefill naive: HQ=%lld exceeds the grid's y limit 65535", (long long)HQ);
  if (!q || !k_cache || !v_cache || !out) return klab_fail(err, "attn_prefill naive: NULL tensor pointer");
  const size_t row_bytes = score_row_bytes(T, p0, HQ);
  if (row_bytes == 0)
    return klab_fail(err, "attn_prefill naive: one query row of scores (HQ=%lld x P0+T=%lld floats) exceeds %zu bytes",
                     (long long)HQ, (long long)(p0 + T), (size_t)ATTN_PREFILL_NAIVE_ROW_LIMIT);
  if (!workspace || workspace_bytes < row_bytes || (uintptr_t)workspace % sizeof(float) != 0)
    return klab_fail(err, "attn_prefill naive T=%lld P0=%lld HQ=%lld: workspace %p of %zu bytes, need >= %zu (4-byte aligned)",
                     (long long)T, (long long)p0, (long long)HQ, workspace, workspace_bytes, row_bytes);
  int64_t rows_per_chunk = (int64_t)(workspace_bytes / row_bytes);
  if (rows_per_chunk > T) rows_per_chunk = T;
  if (rows_per_chunk > 2147483647) rows_per_chunk = 2147483647;
  const float scale = (float)(1.0 / sqrt((double)D));
  const size_t smem = (size_t)D * sizeof(float);
  for (int64_t t0 = 0; t0 < T; t0 += rows_per_chunk) {
    const int64_t rows = T - t0 < rows_per_chunk ? T - t0 : rows_per_chunk;
    dim3 grid((unsigned)rows, (unsigned)HQ);
    attn_prefill_naive_kernel<<<grid, NAIVE_THREADS, smem, stream>>>(
        (const __nv_bfloat16 *)q, (const __nv_bfloat16 *)k_cache, (const __nv_bfloat16 *)v_cache, (__nv_bfloat16 *)out,
        t0, p0, HQ, HQ / HKV, D, cache_stride, p0 + T, scale, (float *)workspace);
    KLAB_CHECK_LAUNCH(err, "attn_prefill naive");
  }
  return 0;
}
