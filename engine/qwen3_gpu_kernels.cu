// Two tiny kernels of the GPU runner's decode loop. The decode step reads its token, position and
// sampling step from device memory so that one captured CUDA graph serves every step: advance moves
// them on at the end of each step, set writes them once after prefill.
#include <stdint.h>
#include "engine/qwen3_gpu_kernels.h"

__global__ void qwen3_scalars_advance_kernel(int32_t *s) {
  s[QWEN3_SCALAR_POS] += 1;
  s[QWEN3_SCALAR_CTX] = s[QWEN3_SCALAR_POS] + 1;
  s[QWEN3_SCALAR_STEP] += 1;
}

__global__ void qwen3_scalars_set_kernel(int32_t *s, int32_t pos, int32_t step) {
  s[QWEN3_SCALAR_POS] = pos;
  s[QWEN3_SCALAR_CTX] = pos + 1;
  s[QWEN3_SCALAR_STEP] = step;
}

extern "C" int qwen3_scalars_advance(int32_t *scalars, cudaStream_t stream, klab_err *err) {
  qwen3_scalars_advance_kernel<<<1, 1, 0, stream>>>(scalars);
  KLAB_CHECK_LAUNCH(err, "qwen3 decode: advance position");
  return 0;
}

extern "C" int qwen3_scalars_set(int32_t *scalars, int64_t pos, int64_t step, cudaStream_t stream, klab_err *err) {
  if (pos < 0 || pos >= INT32_MAX || step < 0 || step >= INT32_MAX)
    return klab_fail(err, "qwen3 decode: position %lld / step %lld out of int32 range", (long long)pos, (long long)step);
  qwen3_scalars_set_kernel<<<1, 1, 0, stream>>>(scalars, (int32_t)pos, (int32_t)step);
  KLAB_CHECK_LAUNCH(err, "qwen3 decode: set position");
  return 0;
}
