// embedding, naive: one block per token, scalar bf16 copies of its row. An id outside [0,V) is never used
// as an address: its row of out is zeroed and counted in *bad_ids. The correctness baseline.
#include <stdint.h>
#include "kernels/embedding/embedding.h"

#define NAIVE_THREADS 256

__global__ void embedding_naive_kernel(const int32_t *ids, const uint16_t *table, uint16_t *out, int32_t *bad_ids,
                                       int64_t V, int64_t H) {
  const int64_t t = blockIdx.x;
  const int32_t id = ids[t];
  const bool bad = id < 0 || (int64_t)id >= V;
  if (bad && threadIdx.x == 0) atomicAdd(bad_ids, 1);
  uint16_t *dst = out + t * H;
  for (int64_t i = threadIdx.x; i < H; i += NAIVE_THREADS) dst[i] = bad ? (uint16_t)0 : table[(int64_t)id * H + i];
}

extern "C" int embedding_naive(const int32_t *ids, const uint16_t *table, uint16_t *out, int32_t *bad_ids, int64_t T,
                               int64_t V, int64_t H, cudaStream_t stream, klab_err *err) {
  if (T < 1 || V < 1 || H < 1 || T > 2147483647 || V > 2147483647 || H > 2147483647)
    return klab_fail(err, "embedding naive: bad shape T=%lld V=%lld H=%lld (each must be in [1, 2^31-1])", (long long)T,
                     (long long)V, (long long)H);
  if (!ids || !table || !out || !bad_ids)
    return klab_fail(err, "embedding naive: T=%lld V=%lld H=%lld: NULL ids, table, out or bad_ids", (long long)T, (long long)V,
                     (long long)H);
  if ((uintptr_t)ids % 4 != 0 || (uintptr_t)bad_ids % 4 != 0 || (uintptr_t)table % 2 != 0 || (uintptr_t)out % 2 != 0)
    return klab_fail(err, "embedding naive: T=%lld V=%lld H=%lld: a pointer is not aligned to its element size", (long long)T,
                     (long long)V, (long long)H);
  KLAB_CUDA(err, cudaMemsetAsync(bad_ids, 0, sizeof *bad_ids, stream), "embedding naive: zero bad_ids");
  embedding_naive_kernel<<<(unsigned)T, NAIVE_THREADS, 0, stream>>>(ids, table, out, bad_ids, V, H);
  KLAB_CHECK_LAUNCH(err, "embedding naive");
  return 0;
}
