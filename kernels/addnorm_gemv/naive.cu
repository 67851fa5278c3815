// addnorm_gemv, naive: the correctness baseline, obviously right and slow. One 256-thread block per 8 outputs
// (a warp per output). The op has no workspace, so every block recomputes the M norms itself (scalar loads,
// shared-memory tree reduction), then each warp rebuilds h element by element from r, delta and norm_w while
// it walks K (scalar loads, lanes striding over K) - the same fp32 expressions as the optimized kernel. Any
// K and any alignment. Block 0 also writes r_out.
#include <cuda_bf16.h>
#include <stdint.h>
#include "kernels/addnorm_gemv/addnorm_gemv.h"

#define NAIVE_THREADS 256 /* a power of two: the tree reduction halves it */
#define NAIVE_WARPS (NAIVE_THREADS / 32)

// s = bf16(r + delta): the residual stream is bf16, so the norm sees the rounded sum.
static __device__ __forceinline__ float residual_at(const __nv_bfloat16 *r, const __nv_bfloat16 *delta, int64_t i) {
  if (!delta) return __bfloat162float(r[i]);
  return __bfloat162float(__float2bfloat16_rn(__bfloat162float(r[i]) + __bfloat162float(delta[i])));
}

__global__ void __launch_bounds__(NAIVE_THREADS)
addnorm_gemv_naive_kernel(const __nv_bfloat16 *r, const __nv_bfloat16 *delta, const __nv_bfloat16 *norm_w, const __nv_bfloat16 *W,
                          __nv_bfloat16 *r_out, __nv_bfloat16 *y, int M, int64_t n_out, int64_t up_offset, int64_t K, int silu,
                          float eps) {
  __shared__ float partial[NAIVE_THREADS];
  __shared__ float inv_rms[KLAB_ADDNORM_GEMV_MAX_M];
  for (int m = 0; m < M; m++) {
    float ss = 0.f;
    for (int64_t k = threadIdx.x; k < K; k += NAIVE_THREADS) {
      const float s = residual_at(r, delta, (int64_t)m * K + k);
      if (r_out && blockIdx.x == 0) r_out[(int64_t)m * K + k] = __float2bfloat16_rn(s);
      ss += s * s;
    }
    partial[threadIdx.x] = ss;
    __syncthreads();
    for (int half = NAIVE_THREADS / 2; half > 0; half /= 2) {
      if ((int)threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
      __syncthreads();
    }
    if (threadIdx.x == 0) inv_rms[m] = rsqrtf(partial[0] / (float)K + eps);
    __syncthreads();  // partial is reused by the next m; inv_rms is read below
  }
  const int lane = threadIdx.x % 32;
  const int64_t j = (int64_t)blockIdx.x * NAIVE_WARPS + threadIdx.x / 32;
  if (j >= n_out) return;  // no barriers below
  const __nv_bfloat16 *w_gate = W + j * K, *w_up = W + (j + up_offset) * K;
  for (int m = 0; m < M; m++) {
    float g = 0.f, u = 0.f;
    for (int64_t k = lane; k < K; k += 32) {
      const float s = residual_at(r, delta, (int64_t)m * K + k);
      const float h = __bfloat162float(__float2bfloat16_rn(s * inv_rms[m] * __bfloat162float(norm_w[k])));
      g += h * __bfloat162float(w_gate[k]);
      if (silu) u += h * __bfloat162float(w_up[k]);
    }
    for (int o = 16; o > 0; o /= 2) {
      g += __shfl_xor_sync(0xffffffffu, g, o);
      u += __shfl_xor_sync(0xffffffffu, u, o);
    }
    if (lane == 0) y[(int64_t)m * n_out + j] = __float2bfloat16_rn(silu ? g / (1.0f + expf(-g)) * u : g);
  }
}

extern "C" int addnorm_gemv_naive(const uint16_t *r, const uint16_t *delta, const uint16_t *norm_w, const uint16_t *W,
                                  uint16_t *r_out, uint16_t *y, int64_t M, int64_t N, int64_t K, int silu, float eps,
                                  cudaStream_t stream, klab_err *err) {
  if (M < 1 || M > KLAB_ADDNORM_GEMV_MAX_M || N < 1 || K < 1)
    return klab_fail(err, "addnorm_gemv naive: bad shape M=%lld N=%lld K=%lld (M must be 1..%d)", (long long)M, (long long)N,
                     (long long)K, KLAB_ADDNORM_GEMV_MAX_M);
  if (silu && N % 2 != 0) return klab_fail(err, "addnorm_gemv naive (silu): N=%lld must be even (gate rows then up rows)", (long long)N);
  if (N > 2147483647LL / 8 || K > 2147483647LL)
    return klab_fail(err, "addnorm_gemv naive: N=%lld or K=%lld too large", (long long)N, (long long)K);
  if (!r || !norm_w || !W || !y)
    return klab_fail(err, "addnorm_gemv naive M=%lld N=%lld K=%lld: NULL r, norm_w, W or y", (long long)M, (long long)N, (long long)K);
  const int64_t n_out = silu ? N / 2 : N;
  const unsigned grid = (unsigned)((n_out + NAIVE_WARPS - 1) / NAIVE_WARPS);
  addnorm_gemv_naive_kernel<<<grid, NAIVE_THREADS, 0, stream>>>(
      (const __nv_bfloat16 *)r, (const __nv_bfloat16 *)delta, (const __nv_bfloat16 *)norm_w, (const __nv_bfloat16 *)W,
      (__nv_bfloat16 *)r_out, (__nv_bfloat16 *)y, (int)M, n_out, silu ? n_out : 0, K, silu, eps);
  KLAB_CHECK_LAUNCH(err, silu ? "addnorm_gemv_silu naive" : "addnorm_gemv naive");
  return 0;
}
