// add_rmsnorm, naive: one 256-thread block per row, scalar bf16 loads, shared-memory tree reduction. The
// first pass writes the rounded residual back to r and sums its squares; the second pass re-reads r (each
// thread reads only the elements it wrote itself) and writes y. The correctness baseline: obviously right.
#include <cuda_bf16.h>
#include "kernels/add_rmsnorm/add_rmsnorm.h"

#define NAIVE_THREADS 256 /* a power of two: the tree reduction halves it */

__global__ void __launch_bounds__(NAIVE_THREADS)
add_rmsnorm_naive_kernel(__nv_bfloat16 *r, const __nv_bfloat16 *x, const __nv_bfloat16 *w, __nv_bfloat16 *y,
                         int64_t H, float eps) {
  __shared__ float partial[NAIVE_THREADS];
  const int64_t row_start = (int64_t)blockIdx.x * H;
  __nv_bfloat16 *rr = r + row_start;
  const __nv_bfloat16 *xr = x + row_start;
  float ss = 0.f;
  for (int64_t i = threadIdx.x; i < H; i += NAIVE_THREADS) {
    // The residual is stored in bf16, so the norm must see the rounded sum, not the fp32 one.
    const __nv_bfloat16 sum = __float2bfloat16_rn(__bfloat162float(rr[i]) + __bfloat162float(xr[i]));
    rr[i] = sum;
    const float v = __bfloat162float(sum);
    ss += v * v;
  }
  partial[threadIdx.x] = ss;
  __syncthreads();
  for (int s = NAIVE_THREADS / 2; s > 0; s /= 2) {
    if ((int)threadIdx.x < s) partial[threadIdx.x] += partial[threadIdx.x + s];
    __syncthreads();
  }
  const float inv = rsqrtf(partial[0] / (float)H + eps);
  for (int64_t i = threadIdx.x; i < H; i += NAIVE_THREADS)
    y[row_start + i] = __float2bfloat16_rn(__bfloat162float(rr[i]) * inv * __bfloat162float(w[i]));
}

extern "C" int add_rmsnorm_naive(uint16_t *r, const uint16_t *x, const uint16_t *w, uint16_t *y, int64_t T,
                                 int64_t H, float eps, cudaStream_t stream, klab_err *err) {
  if (T <= 0 || H <= 0) return klab_fail(err, "add_rmsnorm naive: bad shape T=%lld H=%lld", (long long)T, (long long)H);
  if (T > 2147483647) return klab_fail(err, "add_rmsnorm naive: T=%lld exceeds the grid limit", (long long)T);
  if (!r || !x || !w || !y) return klab_fail(err, "add_rmsnorm naive T=%lld H=%lld: NULL tensor pointer", (long long)T, (long long)H);
  add_rmsnorm_naive_kernel<<<(unsigned)T, NAIVE_THREADS, 0, stream>>>((__nv_bfloat16 *)r, (const __nv_bfloat16 *)x,
                                                                      (const __nv_bfloat16 *)w, (__nv_bfloat16 *)y, H, eps);
  KLAB_CHECK_LAUNCH(err, "add_rmsnorm naive");
  return 0;
}
