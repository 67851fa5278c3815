// embedding through the bulk-copy engine: rows move global -> shared -> global by 1-D TMA copies.
//
// Why: the register kernels (optimized.cu) already have every row load of T = 4096 in flight at once and
// still reach only ~84% of the read ceiling on read + write traffic. The bulk engine moves a whole row per
// instruction, and its stores write whole lines without passing through registers; this variant measures
// whether that buys the rest.
//
// Layout: one warp per block, at most one block per SM at a time (the ring takes the shared memory), and a
// contiguous range of tokens per block (so its rows of out are one contiguous range). The warp stages the
// block's ids in shared memory (one round trip), then lane 0 drives a ring of row slots: it requests the
// table rows of the first `slots` tokens, and for each token in order waits for its row, issues the bulk
// store of the slot to out, and refills the slot of the token LAG places back once that token's store has
// finished reading shared memory (bulk groups retire in order), so loads stay in flight behind the stores.
// An id outside [0, V) is never used as an address: its slot's barrier is completed by a plain arrival, the
// warp writes the zero row with ordinary stores, and lane 0 counts it in *bad_ids.
#include <stdint.h>
#include <stdio.h>
#include "kernels/common/mbarrier.cuh"
#include "kernels/embedding/embedding.h"

#define EMB_BULK_THREADS 32
#define EMB_BULK_MAX_IDS 2048 /* tokens per block; more blocks (waves) beyond T = 2048 * SMs */
#define EMB_BULK_LAG 4        /* stores in flight before their slots are refilled */
#define EMB_BULK_SMEM (227 * 1024)

__global__ void __launch_bounds__(EMB_BULK_THREADS)
embedding_bulk_kernel(const int32_t *__restrict__ ids, const uint16_t *__restrict__ table, uint16_t *__restrict__ out,
                      int32_t *__restrict__ bad_ids, int64_t T, int64_t V, int64_t H, int slots) {
  extern __shared__ __align__(128) uint8_t smem[];
  const uint32_t row_bytes = (uint32_t)(H * 2);
  const uint32_t slot_bytes = (row_bytes + 127u) & ~127u;
  uint8_t *ring = smem;
  int32_t *sid = reinterpret_cast<int32_t *>(smem + (size_t)slots * slot_bytes);
  uint64_t *bars_ptr = reinterpret_cast<uint64_t *>(sid + EMB_BULK_MAX_IDS);
  const uint32_t ring_addr = (uint32_t)__cvta_generic_to_shared(ring);
  const uint32_t full0 = (uint32_t)__cvta_generic_to_shared(bars_ptr);
  const int lane = threadIdx.x;

  const int64_t G = gridDim.x;
  const int64_t t0 = blockIdx.x * T / G, t1 = (blockIdx.x + 1) * T / G;
  const int n = (int)(t1 - t0); /* <= EMB_BULK_MAX_IDS (launcher) */
  for (int i = lane; i < n; i += 32) sid[i] = __ldg(ids + t0 + i);
  if (lane == 0) {
    for (int s = 0; s < slots; s++) mbar_init(full0 + 8u * s, 1);
    mbar_init_fence();
  }
  __syncwarp();

  // Request the row of token i into its slot (or complete the slot's phase by hand for a bad id).
  auto request = [&](int i) {
    const int s = i % slots;
    const int32_t id = sid[i];
    if (id < 0 || (int64_t)id >= V) {
      mbar_arrive(full0 + 8u * s);
    } else {
      mbar_arrive_expect_tx(full0 + 8u * s, row_bytes);
      bulk_load_1d(ring_addr + (uint32_t)s * slot_bytes, table + (int64_t)id * H, row_bytes, full0 + 8u * s);
    }
  };
  if (lane == 0)
    for (int i = 0; i < n && i < slots; i++) request(i);

  for (int i = 0; i < n; i++) {
    const int32_t id = sid[i];
    if (id < 0 || (int64_t)id >= V) {  // warp-uniform
      uint4 *dst = reinterpret_cast<uint4 *>(out + (t0 + i) * H);
      for (int64_t j = lane; j < H / 8; j += 32) dst[j] = make_uint4(0u, 0u, 0u, 0u);
      if (lane == 0) atomicAdd(bad_ids, 1);
    }
    if (lane == 0) {
      const int s = i % slots;
      mbar_wait(full0 + 8u * s, (uint32_t)(i / slots) & 1u);
      if (!(id < 0 || (int64_t)id >= V)) {
        bulk_store_1d(out + (t0 + i) * H, ring_addr + (uint32_t)s * slot_bytes, row_bytes);
        bulk_commit();
      }
      // Refill the slot of token i - LAG with token i - LAG + slots, once that store has read its slot.
      const int back = i - EMB_BULK_LAG;
      if (back >= 0 && back + slots < n) {
        bulk_wait_read<EMB_BULK_LAG>();
        request(back + slots);
      }
    }
    __syncwarp();
  }
  // The tail tokens whose refills the loop did not reach: none (back + slots < n covers every token), so
  // only the stores remain; the slots must stay allocated until they are done.
  if (lane == 0) bulk_wait_all();
  __syncwarp();
}

extern "C" int embedding_bulk(const int32_t *ids, const uint16_t *table, uint16_t *out, int32_t *bad_ids, int64_t T, int64_t V,
                              int64_t H, cudaStream_t stream, klab_err *err) {
  char ctx[160];
  snprintf(ctx, sizeof ctx, "embedding bulk T=%lld V=%lld H=%lld", (long long)T, (long long)V, (long long)H);
  if (T < 1 || V < 1 || H < 1 || T > 2147483647 || V > 2147483647 || H > 2147483647)
    return klab_fail(err, "%s: bad shape (each must be in [1, 2^31-1])", ctx);
  if (!ids || !table || !out || !bad_ids) return klab_fail(err, "%s: NULL ids, table, out or bad_ids", ctx);
  if (!embedding_bulk_supports(H, NULL, 0) || (uintptr_t)table % 16 != 0 || (uintptr_t)out % 16 != 0 || (uintptr_t)ids % 4 != 0 ||
      (uintptr_t)bad_ids % 4 != 0)
    return klab_fail(err, "%s: needs H %% 8 == 0, H <= %d and 16-byte aligned table and out", ctx, KLAB_EMBEDDING_BULK_MAX_H);
  const int64_t slot_bytes = (H * 2 + 127) / 128 * 128;
  const int64_t fixed = EMB_BULK_MAX_IDS * 4;
  int64_t slots = (EMB_BULK_SMEM - fixed) / (slot_bytes + 8);
  if (slots > 64) slots = 64;
  const size_t smem = (size_t)(slots * slot_bytes + fixed + slots * 8);
  static int attr_set = 0;
  if (!attr_set) {
    KLAB_CUDA(err, cudaFuncSetAttribute(embedding_bulk_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, EMB_BULK_SMEM), ctx);
    attr_set = 1;
  }
  int dev = 0, sms = 0;
  KLAB_CUDA(err, cudaGetDevice(&dev), ctx);
  KLAB_CUDA(err, cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev), ctx);
  if (sms < 1) return klab_fail(err, "%s: device reports %d SMs", ctx, sms);
  int64_t grid = sms < T ? sms : T;
  if ((T + grid - 1) / grid > EMB_BULK_MAX_IDS) grid = (T + EMB_BULK_MAX_IDS - 1) / EMB_BULK_MAX_IDS;
  KLAB_CUDA(err, cudaMemsetAsync(bad_ids, 0, sizeof *bad_ids, stream), ctx);
  embedding_bulk_kernel<<<(unsigned)grid, EMB_BULK_THREADS, smem, stream>>>(ids, table, out, bad_ids, T, V, H, (int)slots);
  KLAB_CHECK_LAUNCH(err, ctx);
  return 0;
}

extern "C" int embedding_bulk_supports(int64_t H, char *why, size_t n) {
  if (H % 8 != 0 || H > KLAB_EMBEDDING_BULK_MAX_H) {
    if (why) snprintf(why, n, "H=%lld: needs H %% 8 == 0 (whole 16-byte rows) and H <= %d", (long long)H, KLAB_EMBEDDING_BULK_MAX_H);
    return 0;
  }
  return 1;
}
