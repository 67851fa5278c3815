// Device-side gate input generation: the same formula as klab_fill_host (harness/gen.h), so large weights
// (an lm_head is ~1 GB) are drawn at memory speed; the host reads them back for the reference.
#include <cuda_runtime.h>
#include "harness/bf16.h"
#include "harness/gate.h"
#include "harness/gen.h"

__global__ void fill_kernel(void *dst, int dt, int64_t n, uint64_t tseed, int dist, float scale, float offset) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    float v = offset + scale * klab_gen_value(dist, tseed, (uint64_t)i);
    if (dt == KLAB_DT_BF16) ((uint16_t *)dst)[i] = klab_float_to_bf16(v);
    else if (dt == KLAB_DT_F32) ((float *)dst)[i] = v;
    else ((int32_t *)dst)[i] = (int32_t)v;
  }
}

extern "C" int klab_fill_device(void *dst, klab_dtype dt, int64_t n, uint64_t tseed, int dist, float scale,
                                float offset, cudaStream_t stream, klab_err *err) {
  if (n <= 0) return 0;
  int64_t blocks = (n + 255) / 256;
  if (blocks > 65536) blocks = 65536;
  fill_kernel<<<(unsigned)blocks, 256, 0, stream>>>(dst, (int)dt, n, tseed, dist, scale, offset);
  KLAB_CHECK_LAUNCH(err, "gate input fill");
  return 0;
}
