// gemv, optimized for batch-1 decode: the op is a single pass over W (N*K*2 bytes), so everything serves
// DRAM bandwidth. W is read with 16-byte streaming loads (__ldcs: read once, so it should not evict x from
// L1); x (tiny, reused by every warp) comes through L1 with __ldg. M = 1 runs on CUDA cores, M = 2..16 on
// tensor cores. Rows not made of whole 16-byte vectors (K % 8 != 0, unaligned pointers) use a scalar
// warp-per-row kernel.
// docs/ops/gemv.md records each step and what it bought.
#include <cuda_bf16.h>
#include <stdint.h>
#include "kernels/gemv/gemv.h"

static __device__ __forceinline__ float dot8(const uint4 &a, const uint4 &b) {
  const __nv_bfloat162 *ha = reinterpret_cast<const __nv_bfloat162 *>(&a);
  const __nv_bfloat162 *hb = reinterpret_cast<const __nv_bfloat162 *>(&b);
  float s = 0.f;
#pragma unroll
  for (int i = 0; i < 4; i++) {
    float2 fa = __bfloat1622float2(ha[i]), fb = __bfloat1622float2(hb[i]);
    s = fmaf(fa.x, fb.x, s);
    s = fmaf(fa.y, fb.y, s);
  }
  return s;
}

// M = 1: a block of 8 warps owns 8/WPR rows; the WPR warps of a row split its K, so every lane issues all
// of its (up to UNROLL) 16-byte loads before the first use: one DRAM round trip per row slice instead of
// a chain of them. Partial sums meet in shared memory.
template <int WPR, int UNROLL>
__global__ void __launch_bounds__(256)
gemv_m1_kernel(const uint4 *__restrict__ x, const uint4 *__restrict__ W, __nv_bfloat16 *__restrict__ y, int N, int K8) {
  constexpr int ROWS = 8 / WPR;
  __shared__ float partial[8];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int row_in_block = warp / WPR, slice = warp % WPR;
  const int n = blockIdx.x * ROWS + row_in_block;
  const int per_slice = (K8 + WPR - 1) / WPR;
  const int k_begin = slice * per_slice, k_end = min(K8, k_begin + per_slice);
  float acc = 0.f;
  if (n < N) {
    const uint4 *wr = W + (int64_t)n * K8;
    for (int k0 = k_begin + lane; k0 < k_end; k0 += 32 * UNROLL) {
      uint4 wv[UNROLL];
#pragma unroll
      for (int u = 0; u < UNROLL; u++)
        if (k0 + u * 32 < k_end) wv[u] = __ldcs(wr + k0 + u * 32);
#pragma unroll
      for (int u = 0; u < UNROLL; u++)
        if (k0 + u * 32 < k_end) acc += dot8(__ldg(x + k0 + u * 32), wv[u]);
    }
  }
#pragma unroll
  for (int o = 16; o > 0; o /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, o);
  if (WPR == 1) {
    if (lane == 0 && n < N) y[n] = __float2bfloat16(acc);
    return;
  }
  if (lane == 0) partial[warp] = acc;
  __syncthreads();
  if (slice == 0 && lane == 0 && n < N) {
    float s = 0.f;
#pragma unroll
    for (int i = 0; i < WPR; i++) s += partial[row_in_block * WPR + i];
    y[n] = __float2bfloat16(s);
  }
}

// M = 2..16 on tensor cores: mma.sync m16n8k16 (bf16 in, fp32 accumulate) with x as A (rows >= M are
// zero) and 8 rows of W as B. A dot product does not care about the order of k, so k is permuted inside
// each 32-wide chunk: lane (g = lane/4, q = lane%4) loads W[n0+g][32c + 8q .. 8q+7] and x[g|g+8][same] as
// single 16-byte vectors, and those 8 values serve as its fragments of two mma k-steps. That keeps every
// load 16 bytes wide and removes the FMA-throughput ceiling of the CUDA-core version at M >= 4.
static __device__ __forceinline__ void mma_bf16_16816(float c[4], unsigned a0, unsigned a1, unsigned a2, unsigned a3, unsigned b0, unsigned b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

template <int WPR, int UNROLL>
__global__ void __launch_bounds__(256)
gemv_mma_kernel(const uint4 *__restrict__ x, const uint4 *__restrict__ W, __nv_bfloat16 *__restrict__ y, int M, int N, int K8) {
  constexpr int GROUPS = 8 / WPR;  // row groups of 8 per block
  __shared__ float partial[8][32][4];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int g = lane / 4, q = lane % 4;
  const int group = warp / WPR, slice = warp % WPR;
  const int n0 = (blockIdx.x * GROUPS + group) * 8;
  const int chunks = (K8 + 3) / 4;  // 32-wide k chunks (4 vectors)
  const int per_slice = (chunks + WPR - 1) / WPR;
  const int c_begin = slice * per_slice, c_end = min(chunks, c_begin + per_slice);
  const bool w_ok = n0 + g < N;
  const uint4 *wr = W + (int64_t)(w_ok ? n0 + g : 0) * K8;
  const uint4 *xa = x + (int64_t)g * K8, *xb = x + (int64_t)(g + 8) * K8;
  const bool a_ok = g < M, b_ok = g + 8 < M;
  const uint4 zero = make_uint4(0, 0, 0, 0);
  float c[4] = {0.f, 0.f, 0.f, 0.f};
  for (int c0 = c_begin; c0 < c_end; c0 += UNROLL) {
    uint4 wv[UNROLL];
#pragma unroll
    for (int u = 0; u < UNROLL; u++) {
      const int v = (c0 + u) * 4 + q;
      wv[u] = (w_ok && c0 + u < c_end && v < K8) ? __ldcs(wr + v) : zero;
    }
#pragma unroll
    for (int u = 0; u < UNROLL; u++) {
      const int v = (c0 + u) * 4 + q;
      const bool in = c0 + u < c_end && v < K8;
      const uint4 va = (a_ok && in) ? __ldg(xa + v) : zero;
      const uint4 vb = (b_ok && in) ? __ldg(xb + v) : zero;
      mma_bf16_16816(c, va.x, vb.x, va.y, vb.y, wv[u].x, wv[u].y);
      mma_bf16_16816(c, va.z, vb.z, va.w, vb.w, wv[u].z, wv[u].w);
    }
  }
  if (WPR > 1) {
#pragma unroll
    for (int i = 0; i < 4; i++) partial[warp][lane][i] = c[i];
    __syncthreads();
    if (slice != 0) return;
    for (int s = 1; s < WPR; s++)
#pragma unroll
      for (int i = 0; i < 4; i++) c[i] += partial[warp + s][lane][i];
  }
  // c0,c1: row g, columns 2q, 2q+1; c2,c3: row g+8, same columns.
  const int n = n0 + 2 * q;
  if (g < M) {
    if (n < N) y[(int64_t)g * N + n] = __float2bfloat16(c[0]);
    if (n + 1 < N) y[(int64_t)g * N + n + 1] = __float2bfloat16(c[1]);
  }
  if (g + 8 < M) {
    if (n < N) y[(int64_t)(g + 8) * N + n] = __float2bfloat16(c[2]);
    if (n + 1 < N) y[(int64_t)(g + 8) * N + n + 1] = __float2bfloat16(c[3]);
  }
}

// Any K and alignment: a warp per (row n), lanes stride over K with scalar loads, all M rows of x at once.
__global__ void __launch_bounds__(256)
gemv_scalar_kernel(const __nv_bfloat16 *__restrict__ x, const __nv_bfloat16 *__restrict__ W, __nv_bfloat16 *__restrict__ y, int M, int N, int64_t K) {
  const int lane = threadIdx.x % 32;
  const int n = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  if (n >= N) return;
  float acc[KLAB_GEMV_MAX_M];
#pragma unroll
  for (int m = 0; m < KLAB_GEMV_MAX_M; m++) acc[m] = 0.f;
  const __nv_bfloat16 *wr = W + (int64_t)n * K;
  for (int64_t k = lane; k < K; k += 32) {
    float w = __bfloat162float(wr[k]);
#pragma unroll
    for (int m = 0; m < KLAB_GEMV_MAX_M; m++)
      if (m < M) acc[m] += w * __bfloat162float(x[m * K + k]);
  }
#pragma unroll
  for (int m = 0; m < KLAB_GEMV_MAX_M; m++) {
    if (m >= M) break;
    float v = acc[m];
#pragma unroll
    for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (lane == 0) y[(int64_t)m * N + n] = __float2bfloat16(v);
  }
}

template <int WPR>
static int launch_m1(const uint16_t *x, const uint16_t *W, uint16_t *y, int N, int K8, cudaStream_t stream, klab_err *err) {
  constexpr int ROWS = 8 / WPR;
  gemv_m1_kernel<WPR, 8><<<(unsigned)((N + ROWS - 1) / ROWS), 256, 0, stream>>>((const uint4 *)x, (const uint4 *)W, (__nv_bfloat16 *)y, N, K8);
  KLAB_CHECK_LAUNCH(err, "gemv optimized (M=1)");
  return 0;
}

template <int WPR>
static int launch_mma(const uint16_t *x, const uint16_t *W, uint16_t *y, int M, int N, int K8, cudaStream_t stream, klab_err *err) {
  constexpr int ROWS = 8 * (8 / WPR);
  gemv_mma_kernel<WPR, 8><<<(unsigned)((N + ROWS - 1) / ROWS), 256, 0, stream>>>((const uint4 *)x, (const uint4 *)W, (__nv_bfloat16 *)y, M, N, K8);
  KLAB_CHECK_LAUNCH(err, "gemv optimized (tensor cores)");
  return 0;
}

extern "C" int gemv_optimized(const uint16_t *x, const uint16_t *W, uint16_t *y, int64_t M, int64_t N, int64_t K,
                              cudaStream_t stream, klab_err *err) {
  if (M < 1 || M > KLAB_GEMV_MAX_M || N < 1 || K < 1)
    return klab_fail(err, "gemv optimized: unsupported shape M=%lld N=%lld K=%lld (M must be 1..%d)", (long long)M, (long long)N, (long long)K, KLAB_GEMV_MAX_M);
  if (N > 2147483647LL / 8 || K > 2147483647LL) return klab_fail(err, "gemv optimized: N=%lld or K=%lld too large", (long long)N, (long long)K);
  const int aligned = ((uintptr_t)x % 16 == 0) && ((uintptr_t)W % 16 == 0);
  if (K % 8 != 0 || !aligned) {
    gemv_scalar_kernel<<<(unsigned)((N + 7) / 8), 256, 0, stream>>>((const __nv_bfloat16 *)x, (const __nv_bfloat16 *)W, (__nv_bfloat16 *)y, (int)M, (int)N, K);
    KLAB_CHECK_LAUNCH(err, "gemv optimized (scalar path)");
    return 0;
  }
  const int n = (int)N, k8 = (int)(K / 8);
  if (M == 1) {
    // Warps per row: the fewest that leave each lane at most 8 vectors (all loads issued at once).
    if (k8 <= 256) return launch_m1<1>(x, W, y, n, k8, stream, err);
    if (k8 <= 512) return launch_m1<2>(x, W, y, n, k8, stream, err);
    if (k8 <= 1024) return launch_m1<4>(x, W, y, n, k8, stream, err);
    return launch_m1<8>(x, W, y, n, k8, stream, err);
  }
  // Warps per 8-row group: the fewest that leave each warp at most 16 chunks of 32 k (2 rounds of 8).
  const int chunks = (k8 + 3) / 4;
  if (chunks <= 16) return launch_mma<1>(x, W, y, (int)M, n, k8, stream, err);
  if (chunks <= 32) return launch_mma<2>(x, W, y, (int)M, n, k8, stream, err);
  if (chunks <= 64) return launch_mma<4>(x, W, y, (int)M, n, k8, stream, err);
  return launch_mma<8>(x, W, y, (int)M, n, k8, stream, err);
}
