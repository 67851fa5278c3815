// rmsnorm, naive: one block per row, scalar bf16 loads, shared-memory tree reduction, x read twice.
// The correctness baseline: simple enough to be obviously right.
#include <cuda_bf16.h>
#include "kernels/rmsnorm/rmsnorm.h"

__global__ void rmsnorm_naive_kernel(const __nv_bfloat16 *x, const __nv_bfloat16 *w, __nv_bfloat16 *y, int64_t H, float eps) {
  __shared__ float partial[256];
  const __nv_bfloat16 *xr = x + blockIdx.x * H;
  float ss = 0.f;
  for (int64_t i = threadIdx.x; i < H; i += blockDim.x) {
    float v = __bfloat162float(xr[i]);
    ss += v * v;
  }
  partial[threadIdx.x] = ss;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s /= 2) {
    if (threadIdx.x < s) partial[threadIdx.x] += partial[threadIdx.x + s];
    __syncthreads();
  }
  float inv = rsqrtf(partial[0] / (float)H + eps);
  for (int64_t i = threadIdx.x; i < H; i += blockDim.x)
    y[blockIdx.x * H + i] = __float2bfloat16(__bfloat162float(xr[i]) * inv * __bfloat162float(w[i]));
}

extern "C" int rmsnorm_naive(const uint16_t *x, const uint16_t *w, uint16_t *y, int64_t T, int64_t H, float eps,
                             cudaStream_t stream, klab_err *err) {
  if (T <= 0 || H <= 0) return klab_fail(err, "rmsnorm naive: bad shape T=%lld H=%lld", (long long)T, (long long)H);
  if (T > 2147483647) return klab_fail(err, "rmsnorm naive: T=%lld exceeds the grid limit", (long long)T);
  rmsnorm_naive_kernel<<<(unsigned)T, 256, 0, stream>>>((const __nv_bfloat16 *)x, (const __nv_bfloat16 *)w, (__nv_bfloat16 *)y, H, eps);
  KLAB_CHECK_LAUNCH(err, "rmsnorm naive");
  return 0;
}
