// embedding, optimized: a gather of whole rows, so the design serves DRAM bandwidth, and at prefill sizes
// (T = 4096: 42 MB, ~14 us) the fixed costs of the kernel - the first id round trip, the ramp, the tail -
// weigh as much as the streaming rate.
//
// Work unit ("task"): one warp copies one segment of one row. A row of H8 16-byte vectors is cut into
// nseg = ceil(H8 / (32*VPL)) equal segments (rounded up to whole 128-byte lines), so every lane holds at
// most VPL vectors and issues ALL its loads of the segment before its first store: one DRAM round trip per
// task. (The hardware lets each store wait only for its own load, so stores still trickle out as data
// arrives.) Qwen3-4B's H = 2560 is one segment of exactly 10 vectors per lane at VPL = 10; the previous
// kernel took it as 8 + 2 vectors, two round trips, the second of which formed the kernel's tail.
// The grid is balanced, not capped: if the tasks fit in one wave of resident blocks (T = 4096 does), one
// task per warp; else every warp walks the same number of tasks (grid-stride) and loads the NEXT task's id
// while its current copy is in flight, so only a warp's first id costs a round trip on its own.
// Rows that are not whole 16-byte vectors (H % 8 != 0) or unaligned table/out take a scalar kernel.
// An id outside [0,V) is never used as an address: its row of out is zeroed and counted (once per row) in
// *bad_ids.
//
// Loads and stores carry evict-first hints (__ldcs / __stcs): a table row is read once, and out is consumed
// by the next kernel right away. The candidates registered beside `optimized` (kernels/embedding/op.c) are
// instantiations of the same kernel with another VPL or without the hints (`cached`), and `v1`, an older
// optimized kernel.
#include <stdint.h>
#include <stdio.h>
#include "kernels/embedding/embedding.h"

#define SEG_WARPS 8 /* tasks per block: 256 threads */
#define SEG_THREADS (SEG_WARPS * 32)

// Cache hints of the segment kernel. Evict-first on both (the optimized variant) measured 0.5-1.0 points of the
// read ceiling above no hints on T = 4096 over four H100 runs (docs/ops/embedding.md); evict-first loads with
// plain stores were below both.
enum { HINT_NONE = 0, HINT_STREAM = 1 };

template <bool STREAM>
static __device__ __forceinline__ uint4 load_row_vec(const uint4 *src) {
  // Both are coherent loads (not ld.global.nc): ptxas may not move them past the stores, so all VPL loads
  // stay in flight together. With __ldg (.nc) ptxas interleaved them with the stores to save registers,
  // leaving ~4 of 10 loads in flight (seen in the SASS).
  if (STREAM) return __ldcs(src); /* evict-first in L1 and L2: a table row is read once */
  return __ldcg(src);             /* L2 only, normal L2 policy: a repeated token's row may hit L2 */
}
template <bool STREAM>
static __device__ __forceinline__ void store_row_vec(uint4 *dst, uint4 v) {
  if (STREAM) __stcs(dst, v); /* evict-first */
  else *dst = v;              /* plain: the next op (rmsnorm) reads out, so let it stay in L2 */
}

// ntasks = T * nseg; task k is segment k % nseg of row k / nseg (a row's segments sit in adjacent warps).
template <int VPL, int HINT>
__global__ void __launch_bounds__(SEG_THREADS)
embedding_seg_kernel(const int32_t *__restrict__ ids, const uint4 *__restrict__ table, uint4 *__restrict__ out,
                     int32_t *__restrict__ bad_ids, int64_t ntasks, int64_t V, int64_t H8, int64_t nseg, int seg_len) {
  const int lane = threadIdx.x % 32;
  const int64_t task_stride = (int64_t)gridDim.x * SEG_WARPS;
  int64_t task = (int64_t)blockIdx.x * SEG_WARPS + threadIdx.x / 32;
  if (task >= ntasks) return; /* no barriers in this kernel */
  int64_t row = task / nseg;
  int32_t id = __ldg(ids + row);
  for (;;) {
    // The next task's id, issued now so its latency hides behind this copy.
    const int64_t next = task + task_stride;
    int64_t next_row = 0;
    int32_t next_id = 0;
    if (next < ntasks) {
      next_row = next / nseg;
      next_id = __ldg(ids + next_row);
    }
    const int seg = (int)(task - row * nseg);
    // In-row offsets fit in int: H8 <= (2^31-1)/8.
    const int begin = seg * seg_len;
    const int end = (int64_t)begin + seg_len < H8 ? begin + seg_len : (int)H8;
    uint4 *dst = out + row * H8;
    if (id < 0 || (int64_t)id >= V) {
      if (lane == 0 && seg == 0) atomicAdd(bad_ids, 1); /* segment 0 always exists: one count per row */
      for (int j = begin + lane; j < end; j += 32) dst[j] = make_uint4(0u, 0u, 0u, 0u);
    } else {
      const uint4 *src = table + (int64_t)id * H8;
      uint4 v[VPL];
#pragma unroll
      for (int u = 0; u < VPL; u++) {
        const int j = begin + lane + 32 * u;
        v[u] = make_uint4(0u, 0u, 0u, 0u);
        if (j < end) v[u] = load_row_vec<HINT == HINT_STREAM>(src + j);
      }
#pragma unroll
      for (int u = 0; u < VPL; u++) {
        const int j = begin + lane + 32 * u;
        if (j < end) store_row_vec<HINT == HINT_STREAM>(dst + j, v[u]);
      }
    }
    if (next >= ntasks) break;
    task = next, row = next_row, id = next_id;
  }
}

// Any H, any 2-byte alignment: warp per row, scalar bf16 copies (grid-stride over rows).
#define SCALAR_THREADS 256
#define SCALAR_WARPS (SCALAR_THREADS / 32)
#define SCALAR_MAX_BLOCKS 8192
__global__ void __launch_bounds__(SCALAR_THREADS)
embedding_scalar_kernel(const int32_t *__restrict__ ids, const uint16_t *__restrict__ table, uint16_t *__restrict__ out,
                        int32_t *__restrict__ bad_ids, int64_t T, int64_t V, int64_t H) {
  const int lane = threadIdx.x % 32;
  const int64_t warp_stride = (int64_t)gridDim.x * SCALAR_WARPS;
  for (int64_t t = (int64_t)blockIdx.x * SCALAR_WARPS + threadIdx.x / 32; t < T; t += warp_stride) {
    const int32_t id = __ldg(ids + t);
    uint16_t *dst = out + t * H;
    if (id < 0 || (int64_t)id >= V) {
      if (lane == 0) atomicAdd(bad_ids, 1);
      for (int64_t j = lane; j < H; j += 32) dst[j] = 0;
      continue;
    }
    const uint16_t *src = table + (int64_t)id * H;
    for (int64_t j = lane; j < H; j += 32) dst[j] = __ldg(src + j);
  }
}

// v1 (the previous optimized kernel, kept as a baseline): warp per row, UNROLL 16-byte loads per lane per
// step (a 2560-wide row: 8 + 2), 8 rows per block, grid capped at 8192 blocks with a grid-stride loop.
#define V1_UNROLL 8
#define V1_MAX_BLOCKS 8192
__global__ void __launch_bounds__(SCALAR_THREADS)
embedding_v1_kernel(const int32_t *__restrict__ ids, const uint4 *__restrict__ table, uint4 *__restrict__ out,
                    int32_t *__restrict__ bad_ids, int64_t T, int64_t V, int64_t H8) {
  const int lane = threadIdx.x % 32;
  const int64_t warp_stride = (int64_t)gridDim.x * SCALAR_WARPS;
  for (int64_t t = (int64_t)blockIdx.x * SCALAR_WARPS + threadIdx.x / 32; t < T; t += warp_stride) {
    const int32_t id = __ldg(ids + t);
    uint4 *dst = out + t * H8;
    if (id < 0 || (int64_t)id >= V) {
      if (lane == 0) atomicAdd(bad_ids, 1);
      for (int64_t j = lane; j < H8; j += 32) dst[j] = make_uint4(0u, 0u, 0u, 0u);
      continue;
    }
    const uint4 *src = table + (int64_t)id * H8;
    for (int64_t j0 = lane; j0 < H8; j0 += 32 * V1_UNROLL) {
      uint4 v[V1_UNROLL];
#pragma unroll
      for (int u = 0; u < V1_UNROLL; u++)
        if (j0 + u * 32 < H8) v[u] = __ldg(src + j0 + u * 32);
#pragma unroll
      for (int u = 0; u < V1_UNROLL; u++)
        if (j0 + u * 32 < H8) dst[j0 + u * 32] = v[u];
    }
  }
}

// The checks every launcher shares; 0 ok, -1 with err naming the variant and the shape.
static int check_args(const char *name, const int32_t *ids, const uint16_t *table, const uint16_t *out,
                      const int32_t *bad_ids, int64_t T, int64_t V, int64_t H, klab_err *err) {
  if (T < 1 || V < 1 || H < 1 || T > 2147483647 || V > 2147483647 || H > 2147483647)
    return klab_fail(err, "embedding %s: bad shape T=%lld V=%lld H=%lld (each must be in [1, 2^31-1])", name, (long long)T,
                     (long long)V, (long long)H);
  if (!ids || !table || !out || !bad_ids)
    return klab_fail(err, "embedding %s: T=%lld V=%lld H=%lld: NULL ids, table, out or bad_ids", name, (long long)T,
                     (long long)V, (long long)H);
  if ((uintptr_t)ids % 4 != 0 || (uintptr_t)bad_ids % 4 != 0 || (uintptr_t)table % 2 != 0 || (uintptr_t)out % 2 != 0)
    return klab_fail(err, "embedding %s: T=%lld V=%lld H=%lld: a pointer is not aligned to its element size", name,
                     (long long)T, (long long)V, (long long)H);
  return 0;
}

static int vector_ok(const uint16_t *table, const uint16_t *out, int64_t H) {
  return H % 8 == 0 && (uintptr_t)table % 16 == 0 && (uintptr_t)out % 16 == 0;
}

static int launch_scalar(const char *name, const int32_t *ids, const uint16_t *table, uint16_t *out, int32_t *bad_ids,
                         int64_t T, int64_t V, int64_t H, cudaStream_t stream, klab_err *err) {
  int64_t blocks = (T + SCALAR_WARPS - 1) / SCALAR_WARPS;
  if (blocks > SCALAR_MAX_BLOCKS) blocks = SCALAR_MAX_BLOCKS;
  embedding_scalar_kernel<<<(unsigned)blocks, SCALAR_THREADS, 0, stream>>>(ids, table, out, bad_ids, T, V, H);
  char ctx[160];
  snprintf(ctx, sizeof ctx, "embedding %s (scalar path) T=%lld V=%lld H=%lld", name, (long long)T, (long long)V, (long long)H);
  KLAB_CHECK_LAUNCH(err, ctx);
  return 0;
}

// The segment kernel with VPL vectors per lane per task; the scalar kernel where 16-byte vectors do not fit.
template <int VPL, int HINT>
static int launch_seg(const char *name, const int32_t *ids, const uint16_t *table, uint16_t *out, int32_t *bad_ids,
                      int64_t T, int64_t V, int64_t H, cudaStream_t stream, klab_err *err) {
  if (check_args(name, ids, table, out, bad_ids, T, V, H, err)) return -1;
  char ctx[160];
  snprintf(ctx, sizeof ctx, "embedding %s T=%lld V=%lld H=%lld", name, (long long)T, (long long)V, (long long)H);
  KLAB_CUDA(err, cudaMemsetAsync(bad_ids, 0, sizeof *bad_ids, stream), ctx);
  if (!vector_ok(table, out, H)) return launch_scalar(name, ids, table, out, bad_ids, T, V, H, stream, err);

  const int64_t H8 = H / 8, per_task = 32 * VPL;
  const int64_t nseg = (H8 + per_task - 1) / per_task;
  int64_t seg_len = (H8 + nseg - 1) / nseg;
  seg_len = (seg_len + 7) / 8 * 8; /* segments start on 128-byte lines; still <= per_task (a multiple of 32) */
  if (seg_len > per_task) seg_len = per_task;
  const int64_t ntasks = T * nseg; /* <= 2^31 * 2^23: no overflow */
  const int64_t blocks_needed = (ntasks + SEG_WARPS - 1) / SEG_WARPS;
  int64_t grid = blocks_needed;
  int device = 0, sms = 0;
  KLAB_CUDA(err, cudaGetDevice(&device), ctx);
  KLAB_CUDA(err, cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), ctx);
  if (sms < 1) sms = 1;
  if (blocks_needed > sms) {
    // More than one block per SM: size the grid by the resident blocks, then spread the tasks evenly, so
    // no warp walks one task more than another (T = 4096 at H = 2560: 512 blocks, one task per warp).
    int per_sm = 0;
    KLAB_CUDA(err, cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, embedding_seg_kernel<VPL, HINT>, SEG_THREADS, 0),
              ctx);
    if (per_sm < 1) per_sm = 1;
    const int64_t resident = (int64_t)sms * per_sm;
    const int64_t rounds = (blocks_needed + resident - 1) / resident;
    grid = (blocks_needed + rounds - 1) / rounds; /* <= resident */
  }
  embedding_seg_kernel<VPL, HINT><<<(unsigned)grid, SEG_THREADS, 0, stream>>>(ids, (const uint4 *)table, (uint4 *)out,
                                                                                  bad_ids, ntasks, V, H8, nseg, (int)seg_len);
  KLAB_CHECK_LAUNCH(err, ctx);
  return 0;
}

extern "C" int embedding_optimized(const int32_t *ids, const uint16_t *table, uint16_t *out, int32_t *bad_ids, int64_t T,
                                   int64_t V, int64_t H, cudaStream_t stream, klab_err *err) {
  return launch_seg<10, HINT_STREAM>("optimized", ids, table, out, bad_ids, T, V, H, stream, err);
}
extern "C" int embedding_vpl4(const int32_t *ids, const uint16_t *table, uint16_t *out, int32_t *bad_ids, int64_t T,
                              int64_t V, int64_t H, cudaStream_t stream, klab_err *err) {
  return launch_seg<4, HINT_STREAM>("vpl4", ids, table, out, bad_ids, T, V, H, stream, err);
}
extern "C" int embedding_vpl16(const int32_t *ids, const uint16_t *table, uint16_t *out, int32_t *bad_ids, int64_t T,
                               int64_t V, int64_t H, cudaStream_t stream, klab_err *err) {
  return launch_seg<16, HINT_STREAM>("vpl16", ids, table, out, bad_ids, T, V, H, stream, err);
}
extern "C" int embedding_cached(const int32_t *ids, const uint16_t *table, uint16_t *out, int32_t *bad_ids, int64_t T,
                                int64_t V, int64_t H, cudaStream_t stream, klab_err *err) {
  return launch_seg<10, HINT_NONE>("cached", ids, table, out, bad_ids, T, V, H, stream, err);
}

extern "C" int embedding_v1(const int32_t *ids, const uint16_t *table, uint16_t *out, int32_t *bad_ids, int64_t T, int64_t V,
                            int64_t H, cudaStream_t stream, klab_err *err) {
  if (check_args("v1", ids, table, out, bad_ids, T, V, H, err)) return -1;
  KLAB_CUDA(err, cudaMemsetAsync(bad_ids, 0, sizeof *bad_ids, stream), "embedding v1: zero bad_ids");
  if (!vector_ok(table, out, H)) return launch_scalar("v1", ids, table, out, bad_ids, T, V, H, stream, err);
  int64_t blocks = (T + SCALAR_WARPS - 1) / SCALAR_WARPS;
  if (blocks > V1_MAX_BLOCKS) blocks = V1_MAX_BLOCKS;
  embedding_v1_kernel<<<(unsigned)blocks, SCALAR_THREADS, 0, stream>>>(ids, (const uint4 *)table, (uint4 *)out, bad_ids, T, V,
                                                                      H / 8);
  KLAB_CHECK_LAUNCH(err, "embedding v1 (vector)");
  return 0;
}
