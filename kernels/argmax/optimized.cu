// argmax, optimized: a memory-bound scan, so everything serves bandwidth (large N) or latency (vocabulary-
// sized N, ~0.6 MB of fp32 logits, where launch latency and one DRAM/L2 round trip are most of the time).
//
// One kernel. Every thread keeps its best (value, index) over a grid-stride walk of 16-byte loads (4 fp32
// or 8 bf16 elements), UNROLL loads in flight before the first compare; warps reduce with shuffles, blocks
// through shared memory. With more than one block, each block leaves its pair in the workspace and takes a
// ticket (atomicAdd after __threadfence); the block that draws the last ticket reduces all partials and
// writes the index, so there is no second kernel and no host synchronisation. The launcher zeroes the
// ticket with a 4-byte memset first (the caller's workspace may hold anything); the last block also
// resets it.
//
// The reduction order differs from the reference's left-to-right scan, so the comparison is a total order
// on (value, index) pairs that gives the same answer in any order: a NaN beats every number (lowest index
// among NaNs), then the larger value, then the lower index. Empty threads hold (-inf, INT32_MAX), which
// loses to every real element, -inf included (a real index is at most 2^31-2).
// Unaligned x takes the same kernel with scalar loads; the N % VEC last elements are read by block 0.
#include <cuda_bf16.h>
#include <math.h>
#include <stdint.h>
#include "kernels/argmax/argmax.h"

#define FULL_MASK 0xffffffffu
#define NO_INDEX 2147483647 /* index of the empty candidate: larger than any real index */

// Workspace layout: ticket counter, then the partial values, then the partial indices.
#define WS_TICKET_OFFSET 0
#define WS_VALUES_OFFSET 16
#define WS_INDICES_OFFSET (WS_VALUES_OFFSET + 4 * KLAB_ARGMAX_MAX_BLOCKS)
#define WS_BYTES (WS_INDICES_OFFSET + 4 * KLAB_ARGMAX_MAX_BLOCKS)

#define GRID_THREADS 256      /* block size of the multi-block kernel */
#define GRID_UNROLL 4         /* 16-byte loads in flight per thread per step: 64 KB per SM at 4 blocks/SM */
#define GRID_BLOCKS_PER_SM 4  /* resident blocks per SM: the grid is persistent (grid-stride) */
#define ONE_BLOCK_THREADS 1024 /* N <= KLAB_ARGMAX_ONE_BLOCK_MAX_N: one block, 2 vector loads per thread at most */

// 1 when (av, ai) beats (bv, bi) in the order above.
static __device__ __forceinline__ bool argmax_better(float av, int32_t ai, float bv, int32_t bi) {
  const bool a_nan = isnan(av), b_nan = isnan(bv);
  if (a_nan || b_nan) return a_nan && (!b_nan || ai < bi);
  return av > bv || (av == bv && ai < bi);
}

static __device__ __forceinline__ void take_if_better(float &bv, int32_t &bi, float v, int32_t i) {
  if (argmax_better(v, i, bv, bi)) bv = v, bi = i;
}

// Butterfly over the warp: every lane ends with the warp's best (the order is total, so all agree).
static __device__ __forceinline__ void warp_argmax(float &v, int32_t &i) {
#pragma unroll
  for (int o = 16; o > 0; o /= 2) {
    const float ov = __shfl_xor_sync(FULL_MASK, v, o);
    const int32_t oi = __shfl_xor_sync(FULL_MASK, i, o);
    take_if_better(v, i, ov, oi);
  }
}

// Every thread of the block ends with the block's best. Ends with a barrier so the shared arrays can be
// reused by a second call.
template <int BLOCK>
static __device__ __forceinline__ void block_argmax(float &v, int32_t &i, float *warp_value, int32_t *warp_index) {
  static_assert(BLOCK % 32 == 0 && BLOCK <= 1024, "block of whole warps, at most 32 of them");
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  warp_argmax(v, i);
  if (lane == 0) warp_value[warp] = v, warp_index[warp] = i;
  __syncthreads();
  v = -INFINITY;
  i = NO_INDEX;
  if (lane < BLOCK / 32) v = warp_value[lane], i = warp_index[lane];
  warp_argmax(v, i);
  __syncthreads();
}

// Elements [first, first + VEC) of x as floats: one 16-byte load for VEC > 1 (first is a multiple of VEC and
// x is 16-byte aligned), a scalar load for VEC == 1. Streaming loads: logits are read once.
template <int DT, int VEC>
static __device__ __forceinline__ void load_elems(const void *__restrict__ x, int64_t first, float f[VEC]) {
  if constexpr (DT == KLAB_DT_F32) {
    const float *xf = static_cast<const float *>(x) + first;
    if constexpr (VEC == 4) {
      const float4 v = __ldcs(reinterpret_cast<const float4 *>(xf));
      f[0] = v.x, f[1] = v.y, f[2] = v.z, f[3] = v.w;
    } else {
      static_assert(VEC == 1, "fp32: 4 or 1 elements per load");
      f[0] = __ldcs(xf);
    }
  } else {
    const unsigned short *xh = static_cast<const unsigned short *>(x) + first;
    if constexpr (VEC == 8) {
      const uint4 v = __ldcs(reinterpret_cast<const uint4 *>(xh));
      const __nv_bfloat162 *h = reinterpret_cast<const __nv_bfloat162 *>(&v);
#pragma unroll
      for (int k = 0; k < 4; k++) {
        const float2 p = __bfloat1622float2(h[k]);
        f[2 * k] = p.x, f[2 * k + 1] = p.y;
      }
    } else {
      static_assert(VEC == 1, "bf16: 8 or 1 elements per load");
      f[0] = __uint_as_float((unsigned int)__ldcs(xh) << 16); // bf16 is the top half of an fp32
    }
  }
}

// partial_value / partial_index / ticket are used only when gridDim.x > 1.
template <int BLOCK, int DT, int VEC, int UNROLL>
__global__ void __launch_bounds__(BLOCK)
argmax_kernel(const void *__restrict__ x, int64_t N, int32_t *__restrict__ out_index, float *partial_value,
              int32_t *partial_index, unsigned int *ticket) {
  __shared__ float warp_value[BLOCK / 32];
  __shared__ int32_t warp_index[BLOCK / 32];
  __shared__ bool is_last_block;
  float best = -INFINITY;
  int32_t best_index = NO_INDEX;

  const int64_t nvec = N / VEC; // whole vectors; the N % VEC tail follows
  const int64_t step = (int64_t)gridDim.x * BLOCK * UNROLL;
  for (int64_t v0 = (int64_t)blockIdx.x * BLOCK * UNROLL + threadIdx.x; v0 < nvec; v0 += step) {
    float f[UNROLL][VEC];
#pragma unroll
    for (int u = 0; u < UNROLL; u++) {
      const int64_t v = v0 + (int64_t)u * BLOCK;
      if (v < nvec) load_elems<DT, VEC>(x, v * VEC, f[u]);
    }
#pragma unroll
    for (int u = 0; u < UNROLL; u++) {
      const int64_t v = v0 + (int64_t)u * BLOCK;
      if (v < nvec) {
#pragma unroll
        for (int e = 0; e < VEC; e++) take_if_better(best, best_index, f[u][e], (int32_t)(v * VEC + e));
      }
    }
  }
  if (blockIdx.x == 0) {
    for (int64_t i = nvec * VEC + threadIdx.x; i < N; i += BLOCK) {
      float f[1];
      load_elems<DT, 1>(x, i, f);
      take_if_better(best, best_index, f[0], (int32_t)i);
    }
  }
  block_argmax<BLOCK>(best, best_index, warp_value, warp_index);

  if (gridDim.x == 1) {
    if (threadIdx.x == 0) *out_index = best_index;
    return;
  }
  if (threadIdx.x == 0) {
    partial_value[blockIdx.x] = best;
    partial_index[blockIdx.x] = best_index;
    __threadfence(); // the partial is visible device-wide before the ticket counts it
    const unsigned int taken = atomicAdd(ticket, 1u);
    __threadfence(); // and the last block's reads below are ordered after its ticket
    is_last_block = taken == gridDim.x - 1;
  }
  __syncthreads();
  if (!is_last_block) return;
  __threadfence();
  best = -INFINITY;
  best_index = NO_INDEX;
  for (unsigned int b = threadIdx.x; b < gridDim.x; b += BLOCK)
    take_if_better(best, best_index, __ldcg(partial_value + b), __ldcg(partial_index + b)); // L2, never a stale L1 line
  block_argmax<BLOCK>(best, best_index, warp_value, warp_index);
  if (threadIdx.x == 0) {
    *out_index = best_index;
    *ticket = 0u; // every other block has taken its ticket: leave the counter ready for the next launch
  }
}

extern "C" size_t argmax_workspace_bytes(int64_t N) { return N > KLAB_ARGMAX_ONE_BLOCK_MAX_N ? (size_t)WS_BYTES : 0; }

template <int DT, int VEC>
static int launch(const void *x, int64_t N, int32_t *out_index, void *workspace, int sm_count, cudaStream_t stream,
                  klab_err *err) {
  if (N <= KLAB_ARGMAX_ONE_BLOCK_MAX_N) {
    argmax_kernel<ONE_BLOCK_THREADS, DT, VEC, 1><<<1, ONE_BLOCK_THREADS, 0, stream>>>(x, N, out_index, NULL, NULL, NULL);
    KLAB_CHECK_LAUNCH(err, "argmax optimized (one block)");
    return 0;
  }
  const int64_t nvec = N / VEC, per_block_step = (int64_t)GRID_THREADS * GRID_UNROLL;
  int64_t blocks = (nvec + per_block_step - 1) / per_block_step;
  if (blocks > (int64_t)sm_count * GRID_BLOCKS_PER_SM) blocks = (int64_t)sm_count * GRID_BLOCKS_PER_SM;
  if (blocks > KLAB_ARGMAX_MAX_BLOCKS) blocks = KLAB_ARGMAX_MAX_BLOCKS;
  if (blocks < 1) blocks = 1;
  char *ws = static_cast<char *>(workspace);
  unsigned int *ticket = reinterpret_cast<unsigned int *>(ws + WS_TICKET_OFFSET);
  if (blocks > 1) KLAB_CUDA(err, cudaMemsetAsync(ticket, 0, sizeof *ticket, stream), "argmax optimized: zero the ticket");
  argmax_kernel<GRID_THREADS, DT, VEC, GRID_UNROLL><<<(unsigned)blocks, GRID_THREADS, 0, stream>>>(
      x, N, out_index, reinterpret_cast<float *>(ws + WS_VALUES_OFFSET), reinterpret_cast<int32_t *>(ws + WS_INDICES_OFFSET),
      ticket);
  KLAB_CHECK_LAUNCH(err, "argmax optimized (grid)");
  return 0;
}

extern "C" int argmax_optimized(const void *x, klab_dtype dtype, int64_t N, int32_t *out_index, void *workspace,
                                size_t workspace_bytes, cudaStream_t stream, klab_err *err) {
  if (N < 1 || N > 2147483647)
    return klab_fail(err, "argmax optimized: N=%lld must be in [1, 2^31-1] (the index is int32)", (long long)N);
  if (dtype != KLAB_DT_F32 && dtype != KLAB_DT_BF16)
    return klab_fail(err, "argmax optimized: N=%lld: dtype %s not supported (f32 or bf16)", (long long)N, klab_dtype_name(dtype));
  if (!x || !out_index) return klab_fail(err, "argmax optimized: N=%lld: NULL x or out_index", (long long)N);
  if ((uintptr_t)x % klab_dtype_size(dtype) != 0 || (uintptr_t)out_index % sizeof(int32_t) != 0)
    return klab_fail(err, "argmax optimized: N=%lld: x or out_index not aligned to its element size", (long long)N);
  const size_t need = argmax_workspace_bytes(N);
  if (need > 0) {
    if (!workspace || workspace_bytes < need)
      return klab_fail(err, "argmax optimized: N=%lld needs %zu bytes of workspace, got %zu%s", (long long)N, need,
                       workspace_bytes, workspace ? "" : " (NULL)");
    if ((uintptr_t)workspace % 16 != 0)
      return klab_fail(err, "argmax optimized: N=%lld: workspace not 16-byte aligned", (long long)N);
  }
  int device = 0, sm_count = 0;
  KLAB_CUDA(err, cudaGetDevice(&device), "argmax optimized");
  KLAB_CUDA(err, cudaDeviceGetAttribute(&sm_count, cudaDevAttrMultiProcessorCount, device), "argmax optimized");
  if (sm_count < 1) sm_count = 1;
  const int vector_ok = (uintptr_t)x % 16 == 0;
  if (dtype == KLAB_DT_F32)
    return vector_ok ? launch<KLAB_DT_F32, 4>(x, N, out_index, workspace, sm_count, stream, err)
                     : launch<KLAB_DT_F32, 1>(x, N, out_index, workspace, sm_count, stream, err);
  return vector_ok ? launch<KLAB_DT_BF16, 8>(x, N, out_index, workspace, sm_count, stream, err)
                   : launch<KLAB_DT_BF16, 1>(x, N, out_index, workspace, sm_count, stream, err);
}
