// rmsnorm, optimized: the row is read from DRAM once into registers with 16-byte loads, reduced with warp
// shuffles, scaled and written with 16-byte stores: one read and one write of x's bytes, the minimum.
// The row is split over THREADS_PER_ROW threads (a power of two, >= 32) holding VPT vectors of 8 bf16
// each; small rows pack several rows per 256-thread block. docs/ops/rmsnorm.md has the measured steps.
// Rows whose length is not a multiple of 8 (or unaligned pointers) take a scalar path of the same shape.
#include <cuda_bf16.h>
#include <stdint.h>
#include "kernels/rmsnorm/rmsnorm.h"

static __device__ __forceinline__ void unpack8(const uint4 &v, float f[8]) {
  const __nv_bfloat162 *h = reinterpret_cast<const __nv_bfloat162 *>(&v);
#pragma unroll
  for (int i = 0; i < 4; i++) {
    float2 p = __bfloat1622float2(h[i]);
    f[2 * i] = p.x, f[2 * i + 1] = p.y;
  }
}

static __device__ __forceinline__ uint4 pack8(const float f[8]) {
  uint4 v;
  __nv_bfloat162 *h = reinterpret_cast<__nv_bfloat162 *>(&v);
#pragma unroll
  for (int i = 0; i < 4; i++) h[i] = __floats2bfloat162_rn(f[2 * i], f[2 * i + 1]);
  return v;
}

// Sum over the threads of one row: shuffles inside each warp, then shared memory across the row's warps.
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
rmsnorm_vec_kernel(const uint4 *__restrict__ x, const uint4 *__restrict__ w, uint4 *__restrict__ y, int64_t T, int H8, float eps) {
  constexpr int ROWS = (TPR > 256 ? TPR : 256) / TPR;
  __shared__ float smem[ROWS][TPR / 32];
  const int row_in_block = threadIdx.x / TPR, t = threadIdx.x % TPR;
  const int64_t row = (int64_t)blockIdx.x * ROWS + row_in_block;
  // No early return: row_sum may use __syncthreads; out-of-range rows compute on nothing.
  const bool live = row < T;
  const uint4 *xr = x + row * H8;
  uint4 v[VPT];
  float ss = 0.f;
#pragma unroll
  for (int i = 0; i < VPT; i++) {
    int j = t + i * TPR;
    if (live && j < H8) {
      v[i] = __ldcs(xr + j);  // streamed: read once
      float f[8];
      unpack8(v[i], f);
#pragma unroll
      for (int e = 0; e < 8; e++) ss += f[e] * f[e];
    }
  }
  ss = row_sum<TPR>(ss, smem[row_in_block]);
  const float inv = rsqrtf(ss / (float)(H8 * 8) + eps);
#pragma unroll
  for (int i = 0; i < VPT; i++) {
    int j = t + i * TPR;
    if (live && j < H8) {
      float f[8], g[8];
      unpack8(v[i], f);
      unpack8(__ldg(w + j), g);
#pragma unroll
      for (int e = 0; e < 8; e++) f[e] = f[e] * inv * g[e];
      __stcs(y + row * H8 + j, pack8(f));
    }
  }
}

// Any H, any alignment: one block per row, scalar loads, warp-shuffle reduction; x is read twice (the
// second read mostly hits L2). Used only for rows that are not 16-byte vectors.
__global__ void __launch_bounds__(256) rmsnorm_scalar_kernel(const __nv_bfloat16 *x, const __nv_bfloat16 *w, __nv_bfloat16 *y, int64_t H, float eps) {
  __shared__ float warp_sums[8];
  const __nv_bfloat16 *xr = x + blockIdx.x * H;
  float ss = 0.f;
  for (int64_t i = threadIdx.x; i < H; i += 256) {
    float f = __bfloat162float(xr[i]);
    ss += f * f;
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
    y[blockIdx.x * H + i] = __float2bfloat16(__bfloat162float(xr[i]) * inv * __bfloat162float(w[i]));
}

template <int TPR, int VPT>
static int launch_vec(const uint16_t *x, const uint16_t *w, uint16_t *y, int64_t T, int H8, float eps, cudaStream_t stream, klab_err *err) {
  constexpr int BLOCK = TPR > 256 ? TPR : 256, ROWS = BLOCK / TPR;
  int64_t blocks = (T + ROWS - 1) / ROWS;
  if (blocks > 2147483647) return klab_fail(err, "rmsnorm optimized: T=%lld too large", (long long)T);
  rmsnorm_vec_kernel<TPR, VPT><<<(unsigned)blocks, BLOCK, 0, stream>>>((const uint4 *)x, (const uint4 *)w, (uint4 *)y, T, H8, eps);
  KLAB_CHECK_LAUNCH(err, "rmsnorm optimized (vector)");
  return 0;
}

template <int TPR>
static int launch_tpr(const uint16_t *x, const uint16_t *w, uint16_t *y, int64_t T, int H8, float eps, cudaStream_t stream, klab_err *err) {
  int vpt = (H8 + TPR - 1) / TPR;
  switch (vpt) {
    case 1: return launch_vec<TPR, 1>(x, w, y, T, H8, eps, stream, err);
    case 2: return launch_vec<TPR, 2>(x, w, y, T, H8, eps, stream, err);
    case 3: return launch_vec<TPR, 3>(x, w, y, T, H8, eps, stream, err);
    case 4: return launch_vec<TPR, 4>(x, w, y, T, H8, eps, stream, err);
    default: return launch_vec<TPR, 8>(x, w, y, T, H8, eps, stream, err);
  }
}

extern "C" int rmsnorm_optimized(const uint16_t *x, const uint16_t *w, uint16_t *y, int64_t T, int64_t H, float eps,
                                 cudaStream_t stream, klab_err *err) {
  if (T <= 0 || H <= 0) return klab_fail(err, "rmsnorm optimized: bad shape T=%lld H=%lld", (long long)T, (long long)H);
  const int aligned = ((uintptr_t)x % 16 == 0) && ((uintptr_t)w % 16 == 0) && ((uintptr_t)y % 16 == 0);
  if (H % 8 != 0 || !aligned || H > 8 * 1024 * 8) {
    if (T > 2147483647) return klab_fail(err, "rmsnorm optimized: T=%lld too large", (long long)T);
    rmsnorm_scalar_kernel<<<(unsigned)T, 256, 0, stream>>>((const __nv_bfloat16 *)x, (const __nv_bfloat16 *)w, (__nv_bfloat16 *)y, H, eps);
    KLAB_CHECK_LAUNCH(err, "rmsnorm optimized (scalar path)");
    return 0;
  }
  const int H8 = (int)(H / 8);
  // Smallest row team that holds the row in at most 4 vectors per thread (8 for the largest rows).
  if (H8 <= 32 * 4) return launch_tpr<32>(x, w, y, T, H8, eps, stream, err);
  if (H8 <= 64 * 4) return launch_tpr<64>(x, w, y, T, H8, eps, stream, err);
  if (H8 <= 128 * 4) return launch_tpr<128>(x, w, y, T, H8, eps, stream, err);
  if (H8 <= 256 * 4) return launch_tpr<256>(x, w, y, T, H8, eps, stream, err);
  if (H8 <= 512 * 4) return launch_tpr<512>(x, w, y, T, H8, eps, stream, err);
  return launch_tpr<1024>(x, w, y, T, H8, eps, stream, err);
}
