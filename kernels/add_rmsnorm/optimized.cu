// add_rmsnorm, optimized: the rmsnorm/optimized design (docs/ops/rmsnorm.md) extended by the residual add.
// Each thread loads its part of r and x with 16-byte loads, adds them, rounds the sum to bf16 and keeps
// the rounded vector in registers; it is written back to r at once and squared into the row's sum. After
// the warp-shuffle (+ shared memory across warps) reduction the kept vectors are scaled by the weight and
// written to y. So every byte moves once: read r, x, w and write r, y - the minimum traffic.
// The row is split over TPR threads (a power of two, >= 32) holding VPT vectors of 8 bf16 each; short rows
// pack several rows per 256-thread block. Rows that are not whole 16-byte vectors (H % 8 != 0), unaligned
// pointers, or rows longer than 65536 take a scalar block-per-row path of the same arithmetic.
#include <cuda_bf16.h>
#include <stdint.h>
#include <stdio.h>
#include "kernels/add_rmsnorm/add_rmsnorm.h"

#define VEC_MAX_H8 (1024 * 8) /* the largest row (in 16-byte vectors) the register path holds: 1024 threads x 8 */

static __device__ __forceinline__ void unpack8(const uint4 &v, float f[8]) {
  const __nv_bfloat162 *h = reinterpret_cast<const __nv_bfloat162 *>(&v);
#pragma unroll
  for (int i = 0; i < 4; i++) {
    const float2 p = __bfloat1622float2(h[i]);
    f[2 * i] = p.x, f[2 * i + 1] = p.y;
  }
}

// Round 8 floats to bf16 (round to nearest even, as the host reference's klab_float_to_bf16).
static __device__ __forceinline__ uint4 pack8(const float f[8]) {
  uint4 v;
  __nv_bfloat162 *h = reinterpret_cast<__nv_bfloat162 *>(&v);
#pragma unroll
  for (int i = 0; i < 4; i++) h[i] = __floats2bfloat162_rn(f[2 * i], f[2 * i + 1]);
  return v;
}

// Sum over the TPR threads of one row: shuffles inside each warp, then shared memory across the row's
// warps. Every thread of the block must call it (it may hold a __syncthreads).
template <int TPR>
static __device__ __forceinline__ float row_sum(float v, float *smem_row) {
#pragma unroll
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  if (TPR == 32) return v;
  const int lane = threadIdx.x % 32, warp_in_row = (threadIdx.x % TPR) / 32;
  if (lane == 0) smem_row[warp_in_row] = v;
  __syncthreads();
  float s = 0.f;
#pragma unroll
  for (int i = 0; i < TPR / 32; i++) s += smem_row[i];
  return s;
}

template <int TPR, int VPT>
__global__ void __launch_bounds__(TPR > 256 ? TPR : 256)
add_rmsnorm_vec_kernel(uint4 *__restrict__ r, const uint4 *__restrict__ x, const uint4 *__restrict__ w,
                       uint4 *__restrict__ y, int64_t T, int H8, float eps) {
  constexpr int ROWS = (TPR > 256 ? TPR : 256) / TPR;
  __shared__ float smem[ROWS][TPR / 32];
  const int row_in_block = threadIdx.x / TPR, t = threadIdx.x % TPR;
  const int64_t row = (int64_t)blockIdx.x * ROWS + row_in_block;
  // No early return: row_sum may hold a __syncthreads; threads of rows past T compute on nothing.
  const bool live = row < T;
  const int64_t row_start = live ? row * H8 : 0; /* in 16-byte vectors */
  uint4 sum[VPT]; /* the rounded residual, exactly what is stored to r */
  float ss = 0.f;
#pragma unroll
  for (int i = 0; i < VPT; i++) {
    const int j = t + i * TPR;
    if (live && j < H8) {
      // r and x are read once here (streaming loads); r and y are consumed again soon (the next layer's
      // residual add, the next projection), so they are stored with the default cache policy.
      float fr[8], fx[8];
      unpack8(__ldcs(r + row_start + j), fr);
      unpack8(__ldcs(x + row_start + j), fx);
#pragma unroll
      for (int e = 0; e < 8; e++) fr[e] = fr[e] + fx[e];
      sum[i] = pack8(fr);
      r[row_start + j] = sum[i];
      float fs[8];
      unpack8(sum[i], fs);
#pragma unroll
      for (int e = 0; e < 8; e++) ss += fs[e] * fs[e];
    }
  }
  ss = row_sum<TPR>(ss, smem[row_in_block]);
  const float inv = rsqrtf(ss / (float)(H8 * 8) + eps);
#pragma unroll
  for (int i = 0; i < VPT; i++) {
    const int j = t + i * TPR;
    if (live && j < H8) {
      float f[8], g[8];
      unpack8(sum[i], f);
      unpack8(__ldg(w + j), g);
#pragma unroll
      for (int e = 0; e < 8; e++) f[e] = f[e] * inv * g[e];
      y[row_start + j] = pack8(f);
    }
  }
}

// Any H, any (2-byte) alignment: one 256-thread block per row, scalar loads, warp-shuffle reduction. The
// second pass re-reads r, each thread only the elements it wrote itself (program order makes them visible).
__global__ void __launch_bounds__(256)
add_rmsnorm_scalar_kernel(__nv_bfloat16 *r, const __nv_bfloat16 *x, const __nv_bfloat16 *w, __nv_bfloat16 *y,
                          int64_t H, float eps) {
  __shared__ float warp_sums[8];
  const int64_t row_start = (int64_t)blockIdx.x * H;
  __nv_bfloat16 *rr = r + row_start;
  const __nv_bfloat16 *xr = x + row_start;
  float ss = 0.f;
  for (int64_t i = threadIdx.x; i < H; i += 256) {
    const __nv_bfloat16 sum = __float2bfloat16_rn(__bfloat162float(rr[i]) + __bfloat162float(xr[i]));
    rr[i] = sum;
    const float v = __bfloat162float(sum);
    ss += v * v;
  }
#pragma unroll
  for (int o = 16; o > 0; o /= 2) ss += __shfl_xor_sync(0xffffffffu, ss, o);
  if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = ss;
  __syncthreads();
  float total = 0.f;
#pragma unroll
  for (int i = 0; i < 8; i++) total += warp_sums[i];
  const float inv = rsqrtf(total / (float)H + eps);
  for (int64_t i = threadIdx.x; i < H; i += 256)
    y[row_start + i] = __float2bfloat16_rn(__bfloat162float(rr[i]) * inv * __bfloat162float(w[i]));
}

template <int TPR, int VPT>
static int launch_vec(uint16_t *r, const uint16_t *x, const uint16_t *w, uint16_t *y, int64_t T, int H8, float eps,
                      cudaStream_t stream, klab_err *err) {
  constexpr int BLOCK = TPR > 256 ? TPR : 256, ROWS = BLOCK / TPR;
  const int64_t blocks = (T + ROWS - 1) / ROWS;
  if (blocks > 2147483647) return klab_fail(err, "add_rmsnorm optimized: T=%lld too large", (long long)T);
  add_rmsnorm_vec_kernel<TPR, VPT><<<(unsigned)blocks, BLOCK, 0, stream>>>((uint4 *)r, (const uint4 *)x, (const uint4 *)w,
                                                                           (uint4 *)y, T, H8, eps);
  char ctx[96];
  snprintf(ctx, sizeof ctx, "add_rmsnorm optimized (vector, TPR %d VPT %d) T=%lld H=%d", TPR, VPT, (long long)T, H8 * 8);
  KLAB_CHECK_LAUNCH(err, ctx);
  return 0;
}

template <int TPR>
static int launch_tpr(uint16_t *r, const uint16_t *x, const uint16_t *w, uint16_t *y, int64_t T, int H8, float eps,
                      cudaStream_t stream, klab_err *err) {
  const int vpt = (H8 + TPR - 1) / TPR;
  switch (vpt) {
    case 1: return launch_vec<TPR, 1>(r, x, w, y, T, H8, eps, stream, err);
    case 2: return launch_vec<TPR, 2>(r, x, w, y, T, H8, eps, stream, err);
    case 3: return launch_vec<TPR, 3>(r, x, w, y, T, H8, eps, stream, err);
    case 4: return launch_vec<TPR, 4>(r, x, w, y, T, H8, eps, stream, err);
    default: return launch_vec<TPR, 8>(r, x, w, y, T, H8, eps, stream, err); /* only TPR 1024: vpt 5..8 */
  }
}

extern "C" int add_rmsnorm_optimized(uint16_t *r, const uint16_t *x, const uint16_t *w, uint16_t *y, int64_t T,
                                     int64_t H, float eps, cudaStream_t stream, klab_err *err) {
  if (T <= 0 || H <= 0) return klab_fail(err, "add_rmsnorm optimized: bad shape T=%lld H=%lld", (long long)T, (long long)H);
  if (T > 2147483647) return klab_fail(err, "add_rmsnorm optimized: T=%lld exceeds the grid limit", (long long)T);
  if (!r || !x || !w || !y) return klab_fail(err, "add_rmsnorm optimized T=%lld H=%lld: NULL tensor pointer", (long long)T, (long long)H);
  const int aligned = ((uintptr_t)r % 16 == 0) && ((uintptr_t)x % 16 == 0) && ((uintptr_t)w % 16 == 0) &&
                      ((uintptr_t)y % 16 == 0);
  if (H % 8 != 0 || !aligned || H / 8 > VEC_MAX_H8) {
    add_rmsnorm_scalar_kernel<<<(unsigned)T, 256, 0, stream>>>((__nv_bfloat16 *)r, (const __nv_bfloat16 *)x,
                                                               (const __nv_bfloat16 *)w, (__nv_bfloat16 *)y, H, eps);
    char ctx[96];
    snprintf(ctx, sizeof ctx, "add_rmsnorm optimized (scalar path) T=%lld H=%lld", (long long)T, (long long)H);
    KLAB_CHECK_LAUNCH(err, ctx);
    return 0;
  }
  const int H8 = (int)(H / 8);
  // Smallest row team that holds the row in at most 4 vectors per thread (8 for the largest rows).
  if (H8 <= 32 * 4) return launch_tpr<32>(r, x, w, y, T, H8, eps, stream, err);
  if (H8 <= 64 * 4) return launch_tpr<64>(r, x, w, y, T, H8, eps, stream, err);
  if (H8 <= 128 * 4) return launch_tpr<128>(r, x, w, y, T, H8, eps, stream, err);
  if (H8 <= 256 * 4) return launch_tpr<256>(r, x, w, y, T, H8, eps, stream, err);
  if (H8 <= 512 * 4) return launch_tpr<512>(r, x, w, y, T, H8, eps, stream, err);
  return launch_tpr<1024>(r, x, w, y, T, H8, eps, stream, err);
}
