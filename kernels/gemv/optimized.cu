// gemv, optimized for batch-1 decode: the op is a single pass over W (N*K*2 bytes), so everything serves
// DRAM bandwidth. Each warp owns R rows of W and walks K with 16-byte streaming loads (__ldcs: W is read
// once, so it should not evict x from L1), UNROLL vectors per row in flight per lane; x (tiny, reused by
// every warp) comes through L1 with __ldg. Per-lane fp32 partial sums are reduced with shuffles at the end.
// R grows with M so each x vector loaded serves R rows (keeps L1 traffic per W byte low at M > 1).
// Rows not made of whole 16-byte vectors (K % 8 != 0, unaligned pointers) use a scalar warp-per-row kernel.
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

template <int M, int R, int UNROLL>
__global__ void __launch_bounds__(256)
gemv_vec_kernel(const uint4 *__restrict__ x, const uint4 *__restrict__ W, __nv_bfloat16 *__restrict__ y, int N, int K8) {
  const int lane = threadIdx.x % 32;
  const int warp = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  const int n0 = warp * R;
  if (n0 >= N) return;
  float acc[M][R];
#pragma unroll
  for (int m = 0; m < M; m++)
#pragma unroll
    for (int r = 0; r < R; r++) acc[m][r] = 0.f;
  const uint4 *wrow[R];
#pragma unroll
  for (int r = 0; r < R; r++) wrow[r] = W + (int64_t)(n0 + r < N ? n0 + r : n0) * K8;

  for (int k0 = lane; k0 < K8; k0 += 32 * UNROLL) {
    uint4 wv[R][UNROLL];
#pragma unroll
    for (int u = 0; u < UNROLL; u++)
#pragma unroll
      for (int r = 0; r < R; r++)
        if (k0 + u * 32 < K8) wv[r][u] = __ldcs(wrow[r] + k0 + u * 32);
#pragma unroll
    for (int u = 0; u < UNROLL; u++) {
      const int k = k0 + u * 32;
      if (k < K8) {
#pragma unroll
        for (int m = 0; m < M; m++) {
          const uint4 xv = __ldg(x + (int64_t)m * K8 + k);
#pragma unroll
          for (int r = 0; r < R; r++) acc[m][r] += dot8(xv, wv[r][u]);
        }
      }
    }
  }
#pragma unroll
  for (int m = 0; m < M; m++)
#pragma unroll
    for (int r = 0; r < R; r++) {
      float v = acc[m][r];
#pragma unroll
      for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
      acc[m][r] = v;
    }
  // Spread the stores over lanes: lane (m*R + r) % 32 writes output (m, n0 + r).
#pragma unroll
  for (int m = 0; m < M; m++)
#pragma unroll
    for (int r = 0; r < R; r++)
      if (lane == (m * R + r) % 32 && n0 + r < N) y[(int64_t)m * N + n0 + r] = __float2bfloat16(acc[m][r]);
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

template <int M, int R>
static int launch_vec(const uint16_t *x, const uint16_t *W, uint16_t *y, int N, int K8, cudaStream_t stream, klab_err *err) {
  constexpr int WARPS = 8;
  constexpr int UNROLL = R >= 4 ? 2 : (R == 2 ? 4 : 8);  // ~8 16-byte W loads in flight per lane
  int rows_per_block = WARPS * R;
  unsigned blocks = (unsigned)((N + rows_per_block - 1) / rows_per_block);
  gemv_vec_kernel<M, R, UNROLL><<<blocks, WARPS * 32, 0, stream>>>((const uint4 *)x, (const uint4 *)W, (__nv_bfloat16 *)y, N, K8);
  KLAB_CHECK_LAUNCH(err, "gemv optimized (vector)");
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
  switch (M) {
    case 1: return launch_vec<1, 1>(x, W, y, n, k8, stream, err);
    case 2: return launch_vec<2, 1>(x, W, y, n, k8, stream, err);
    case 3: return launch_vec<3, 2>(x, W, y, n, k8, stream, err);
    case 4: return launch_vec<4, 2>(x, W, y, n, k8, stream, err);
    case 5: return launch_vec<5, 2>(x, W, y, n, k8, stream, err);
    case 6: return launch_vec<6, 2>(x, W, y, n, k8, stream, err);
    case 7: return launch_vec<7, 2>(x, W, y, n, k8, stream, err);
    case 8: return launch_vec<8, 2>(x, W, y, n, k8, stream, err);
    case 9: return launch_vec<9, 4>(x, W, y, n, k8, stream, err);
    case 10: return launch_vec<10, 4>(x, W, y, n, k8, stream, err);
    case 11: return launch_vec<11, 4>(x, W, y, n, k8, stream, err);
    case 12: return launch_vec<12, 4>(x, W, y, n, k8, stream, err);
    case 13: return launch_vec<13, 4>(x, W, y, n, k8, stream, err);
    case 14: return launch_vec<14, 4>(x, W, y, n, k8, stream, err);
    case 15: return launch_vec<15, 4>(x, W, y, n, k8, stream, err);
    default: return launch_vec<16, 4>(x, W, y, n, k8, stream, err);
  }
}
