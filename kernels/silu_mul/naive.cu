// silu_mul, naive: one thread per output element over a flat index (64-bit division to find the row),
// scalar bf16 loads and stores, fp32 math with the accurate expf. The correctness baseline.
#include <cuda_bf16.h>
#include <stdint.h>
#include "kernels/silu_mul/silu_mul.h"

#define NAIVE_THREADS 256
#define NAIVE_MAX_BLOCKS 65536 /* grid-stride beyond this */

__global__ void silu_mul_naive_kernel(const __nv_bfloat16 *gu, __nv_bfloat16 *out, int64_t T, int64_t I) {
  const int64_t n = T * I;
  for (int64_t k = (int64_t)blockIdx.x * NAIVE_THREADS + threadIdx.x; k < n; k += (int64_t)gridDim.x * NAIVE_THREADS) {
    const int64_t t = k / I, i = k % I;
    const float g = __bfloat162float(gu[t * 2 * I + i]);
    const float u = __bfloat162float(gu[t * 2 * I + I + i]);
    out[k] = __float2bfloat16(g / (1.0f + expf(-g)) * u);
  }
}

extern "C" int silu_mul_naive(const uint16_t *gu, uint16_t *out, int64_t T, int64_t I, cudaStream_t stream, klab_err *err) {
  if (T < 1 || I < 1 || T > 2147483647 || I > 2147483647) /* both <= 2^31-1: T*2I fits in int64 */
    return klab_fail(err, "silu_mul naive: bad shape T=%lld I=%lld (each must be in [1, 2^31-1])", (long long)T, (long long)I);
  if (!gu || !out) return klab_fail(err, "silu_mul naive: T=%lld I=%lld: NULL gu or out", (long long)T, (long long)I);
  if ((uintptr_t)gu % 2 != 0 || (uintptr_t)out % 2 != 0)
    return klab_fail(err, "silu_mul naive: T=%lld I=%lld: gu or out not 2-byte aligned", (long long)T, (long long)I);
  int64_t blocks = (T * I + NAIVE_THREADS - 1) / NAIVE_THREADS;
  if (blocks > NAIVE_MAX_BLOCKS) blocks = NAIVE_MAX_BLOCKS;
  silu_mul_naive_kernel<<<(unsigned)blocks, NAIVE_THREADS, 0, stream>>>((const __nv_bfloat16 *)gu, (__nv_bfloat16 *)out, T, I);
  KLAB_CHECK_LAUNCH(err, "silu_mul naive");
  return 0;
}
