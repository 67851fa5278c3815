// argmax, naive: one block of 1024 threads scans all of x with scalar loads, then a shared-memory tree
// reduction of (value, index) candidates. No workspace, no cross-block step: the correctness baseline,
// simple enough to be obviously right (and slow for large N: one SM does all the reading, a few GB/s).
#include <cuda_bf16.h>
#include <stdint.h>
#include "kernels/argmax/argmax.h"

#define NAIVE_THREADS 1024 /* the most one block can have: one SM reads everything */

// 1 when candidate (v, i) should replace the current best (bv, bi); bi < 0 means "no candidate yet".
// Order: a NaN beats any number, the lower index wins among NaNs and among equal values.
static __device__ int naive_takes(float v, int32_t i, float bv, int32_t bi) {
  if (i < 0) return 0;
  if (bi < 0) return 1;
  if (isnan(bv)) return isnan(v) && i < bi;
  if (isnan(v)) return 1;
  return v > bv || (v == bv && i < bi);
}

__global__ void argmax_naive_kernel(const void *x, int is_bf16, int64_t N, int32_t *out_index) {
  __shared__ float cand_value[NAIVE_THREADS];
  __shared__ int32_t cand_index[NAIVE_THREADS];
  float bv = 0.f;
  int32_t bi = -1;
  for (int64_t i = threadIdx.x; i < N; i += NAIVE_THREADS) {
    float v = is_bf16 ? __bfloat162float(((const __nv_bfloat16 *)x)[i]) : ((const float *)x)[i];
    if (naive_takes(v, (int32_t)i, bv, bi)) bv = v, bi = (int32_t)i;
  }
  cand_value[threadIdx.x] = bv;
  cand_index[threadIdx.x] = bi;
  __syncthreads();
  for (int s = NAIVE_THREADS / 2; s > 0; s /= 2) {
    if (threadIdx.x < s) {
      float v = cand_value[threadIdx.x + s];
      int32_t i = cand_index[threadIdx.x + s];
      if (naive_takes(v, i, cand_value[threadIdx.x], cand_index[threadIdx.x])) {
        cand_value[threadIdx.x] = v;
        cand_index[threadIdx.x] = i;
      }
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) *out_index = cand_index[0];
}

extern "C" int argmax_naive(const void *x, klab_dtype dtype, int64_t N, int32_t *out_index, void *workspace,
                            size_t workspace_bytes, cudaStream_t stream, klab_err *err) {
  (void)workspace, (void)workspace_bytes; // one block, no cross-block step: the naive variant needs none
  if (N < 1 || N > 2147483647)
    return klab_fail(err, "argmax naive: N=%lld must be in [1, 2^31-1] (the index is int32)", (long long)N);
  if (dtype != KLAB_DT_F32 && dtype != KLAB_DT_BF16)
    return klab_fail(err, "argmax naive: N=%lld: dtype %s not supported (f32 or bf16)", (long long)N, klab_dtype_name(dtype));
  if (!x || !out_index) return klab_fail(err, "argmax naive: N=%lld: NULL x or out_index", (long long)N);
  if ((uintptr_t)x % klab_dtype_size(dtype) != 0 || (uintptr_t)out_index % sizeof(int32_t) != 0)
    return klab_fail(err, "argmax naive: N=%lld: x or out_index not aligned to its element size", (long long)N);
  argmax_naive_kernel<<<1, NAIVE_THREADS, 0, stream>>>(x, dtype == KLAB_DT_BF16, N, out_index);
  KLAB_CHECK_LAUNCH(err, "argmax naive");
  return 0;
}
