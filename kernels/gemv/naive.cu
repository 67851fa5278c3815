// gemv, naive: one thread per output element, a serial dot product over K with scalar loads.
// Neighbouring threads read different rows of W, so loads are uncoalesced: the correctness baseline.
#include <cuda_bf16.h>
#include "kernels/gemv/gemv.h"

__global__ void gemv_naive_kernel(const __nv_bfloat16 *x, const __nv_bfloat16 *W, __nv_bfloat16 *y, int64_t M, int64_t N, int64_t K) {
  int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (idx >= M * N) return;
  int64_t m = idx / N, n = idx % N;
  float acc = 0.f;
  for (int64_t k = 0; k < K; k++) acc += __bfloat162float(x[m * K + k]) * __bfloat162float(W[n * K + k]);
  y[idx] = __float2bfloat16(acc);
}

extern "C" int gemv_naive(const uint16_t *x, const uint16_t *W, uint16_t *y, int64_t M, int64_t N, int64_t K,
                          cudaStream_t stream, klab_err *err) {
  if (M <= 0 || N <= 0 || K <= 0) return klab_fail(err, "gemv naive: bad shape M=%lld N=%lld K=%lld", (long long)M, (long long)N, (long long)K);
  int64_t blocks = (M * N + 255) / 256;
  if (blocks > 2147483647) return klab_fail(err, "gemv naive: M*N too large");
  gemv_naive_kernel<<<(unsigned)blocks, 256, 0, stream>>>((const __nv_bfloat16 *)x, (const __nv_bfloat16 *)W, (__nv_bfloat16 *)y, M, N, K);
  KLAB_CHECK_LAUNCH(err, "gemv naive");
  return 0;
}
