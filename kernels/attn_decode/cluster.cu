// attn_decode, opt_cluster (EXTRA): the split-K blocks of one KV-head tile form a thread-block cluster and
// merge through distributed shared memory instead of the workspace.
//
// Grid (C, tiles), cluster (C, 1, 1), C a power of two <= 16 (16 needs the non-portable cluster size, used
// where the device holds all the tiles' 16-block clusters at once, else 8). Block `rank` of a cluster
// computes chunk `rank` of the context exactly as optimized does (split.cuh: 8 warps, next-tile prefetch),
// keeps its partial (m, l, unnormalised out) per query head in its own shared memory, and after one
// cluster barrier merges a 1/C slice of the tile's (head, 4 dims) items: C lanes per item each read one
// block's partial over DSMEM, then a butterfly log-sum-exp merge across the C lanes. A second cluster barrier keeps every block's
// shared memory alive until all have read it.
// What it tests against optimized: the tail. No global partials, no fence + atomic arrival, no last-block
// L2 round trip, and the merge is spread over all C SMs of the tile instead of the last block's one; no
// counters, hence no per-call memset and no workspace. The price: at most 16 chunks per tile (8 tiles ->
// 128 blocks for Qwen3), placed by the cluster scheduler.
// Host ctx only: every block of a cluster must reach both barriers, so there is no early exit; idle blocks
// (rank >= active chunks) report an empty partial (m = -inf).
#include <cooperative_groups.h>
#include <math.h>
#include <stdint.h>
#include "kernels/attn_decode/args.h"
#include "kernels/attn_decode/attn_decode.h"
#include "kernels/attn_decode/split.cuh"
#include "kernels/attn_decode/variants.h"

namespace cg = cooperative_groups;

#define CL_WARPS 8
#define CL_THREADS (CL_WARPS * 32)
#define CL_PORTABLE_MAX 8    // cluster size every sm_90 device schedules
#define CL_NONPORTABLE_MAX 16

template <int D, int GT>
struct __align__(16) cluster_smem {
  attn_block_smem<D, GT, CL_WARPS> blk;
  float blk_o[GT][D];  // the block's unnormalised out per head (16-byte aligned: blk's size is a multiple of 16)
  float blk_m[GT], blk_l[GT];
};

template <int D, int GT>
__global__ void __launch_bounds__(CL_THREADS)
attn_decode_cluster_kernel(const uint4 *__restrict__ q, const uint4 *__restrict__ k_cache, const uint4 *__restrict__ v_cache,
                           __nv_bfloat16 *__restrict__ out, int ctx, int group, int head_tiles, int cache_stride,
                           float scale_log2) {
  constexpr int D4 = D / 4, D8 = D / 8;
  __shared__ cluster_smem<D, GT> sm;
  cg::cluster_group cluster = cg::this_cluster();
  const int nslots = (int)cluster.num_blocks(), slot = (int)cluster.block_rank();
  const int tile = (int)blockIdx.y;
  const int kv_head = tile / head_tiles, head_tile = tile % head_tiles;
  const int first_head = kv_head * group + head_tile * GT;
  const int nheads = min(GT, group - head_tile * GT);

  const int chunk = attn_split_chunk(ctx, nslots, CL_WARPS * ATTN_TILE);
  const int active = attn_split_active(ctx, chunk);
  int chunk_begin = 0, chunk_end = 0;  // an idle block: no positions, an empty partial
  if (slot < active) {
    chunk_begin = slot * chunk;
    chunk_end = chunk_begin + min(chunk, ctx - chunk_begin);
  }
  warp_attend<D, GT, CL_WARPS, true>(sm.blk, q + (int64_t)first_head * D8, k_cache + (int64_t)kv_head * cache_stride * D8,
                                     v_cache + (int64_t)kv_head * cache_stride * D8, nheads, chunk_begin, chunk_end,
                                     scale_log2);
  __syncthreads();
  for (int i = threadIdx.x; i < nheads * D4; i += CL_THREADS) {
    const int h = i / D4, d4 = i % D4;
    float m, l;
    float4 o;
    block_combine<D, GT, CL_WARPS>(sm.blk, h, d4, &m, &l, &o);
    reinterpret_cast<float4 *>(&sm.blk_o[h][0])[d4] = o;
    if (d4 == 0) sm.blk_m[h] = m, sm.blk_l[h] = l;
  }
  cluster.sync();  // every block's partial is written (release) and visible to the others (acquire)

  // This block's slice of the items; lane group of nslots consecutive threads per item, lane src reads
  // block src's partial. nslots divides 32, so a group never straddles a warp; the loop count is the same
  // for every thread (the shuffles need whole warps).
  const int items = nheads * D4;
  const int per_rank = (items + nslots - 1) / nslots;
  const int src = threadIdx.x % nslots;
  for (int li0 = 0; li0 < per_rank; li0 += CL_THREADS / nslots) {
    const int li = li0 + threadIdx.x / nslots;
    const int item = slot * per_rank + li;
    const bool valid = li < per_rank && item < items;
    const int h = valid ? item / D4 : 0, d4 = valid ? item % D4 : 0;
    float M = -INFINITY, L = 0.f;
    float4 O = make_float4(0.f, 0.f, 0.f, 0.f);
    if (valid) {
      const cluster_smem<D, GT> *remote = cluster.map_shared_rank(&sm, (unsigned)src);
      M = remote->blk_m[h], L = remote->blk_l[h];
      O = reinterpret_cast<const float4 *>(&remote->blk_o[h][0])[d4];
    }
    for (int offset = 1; offset < nslots; offset *= 2) lse_merge_lane(M, L, O, offset);
    // L >= 1: rank 0 always holds positions, and the block holding the maximum has l >= 1.
    if (valid && src == 0) store_out4<D>(out, first_head + h, d4, O, 1.f / L);
  }
  cluster.sync();  // no block leaves (and frees its shared memory) while another may still read it
}

// ---- host side ----
static int64_t pow2_at_least(int64_t n) {
  int64_t p = 1;
  while (p < n) p *= 2;
  return p;
}

template <int D, int GT>
static int launch_cluster(const uint16_t *q, const uint16_t *k_cache, const uint16_t *v_cache, uint16_t *out, int ctx,
                          int group, int head_tiles, int tiles, int cache_stride, int sm_count, cudaStream_t stream,
                          klab_err *err) {
  void (*kernel)(const uint4 *, const uint4 *, const uint4 *, __nv_bfloat16 *, int, int, int, int, float) =
      attn_decode_cluster_kernel<D, GT>;
  // How many 16-block clusters of this kernel the device holds at once: asked on the first launch that
  // wants 16 (per kernel instantiation; the answer cannot change between launches on one device). 16 is
  // used only where every tile's cluster fits in one wave; else 8 (the portable size).
  static int max_clusters_16 = -1;
  int64_t want = (int64_t)(sm_count + tiles - 1) / tiles;  // about one block per SM
  const int64_t granule = CL_WARPS * ATTN_TILE, granules = ((int64_t)ctx + granule - 1) / granule;
  if (want > granules) want = granules;
  if (want > CL_NONPORTABLE_MAX) want = CL_NONPORTABLE_MAX;
  int64_t nslots = pow2_at_least(want < 1 ? 1 : want);
  if (nslots > CL_PORTABLE_MAX) {
    if (max_clusters_16 < 0) {
      KLAB_CUDA(err, cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1),
                "attn_decode opt_cluster: allow 16-block clusters");
      cudaLaunchConfig_t probe = {};
      cudaLaunchAttribute probe_attr = {};
      probe.gridDim = dim3(CL_NONPORTABLE_MAX, (unsigned)tiles);
      probe.blockDim = dim3(CL_THREADS);
      probe_attr.id = cudaLaunchAttributeClusterDimension;
      probe_attr.val.clusterDim.x = CL_NONPORTABLE_MAX, probe_attr.val.clusterDim.y = 1, probe_attr.val.clusterDim.z = 1;
      probe.attrs = &probe_attr;
      probe.numAttrs = 1;
      int clusters = 0;
      KLAB_CUDA(err, cudaOccupancyMaxActiveClusters(&clusters, kernel, &probe), "attn_decode opt_cluster: 16-block cluster occupancy");
      max_clusters_16 = clusters;
    }
    if (max_clusters_16 < tiles) nslots = CL_PORTABLE_MAX;
  }

  cudaLaunchConfig_t cfg = {};
  cudaLaunchAttribute attr = {};
  cfg.gridDim = dim3((unsigned)nslots, (unsigned)tiles);
  cfg.blockDim = dim3(CL_THREADS);
  cfg.dynamicSmemBytes = 0;
  cfg.stream = stream;
  attr.id = cudaLaunchAttributeClusterDimension;
  attr.val.clusterDim.x = (unsigned)nslots, attr.val.clusterDim.y = 1, attr.val.clusterDim.z = 1;
  cfg.attrs = &attr;
  cfg.numAttrs = 1;
  const float scale_log2 = (float)(ATTN_LOG2E / sqrt((double)D));
  KLAB_CUDA(err, cudaLaunchKernelEx(&cfg, kernel, (const uint4 *)q, (const uint4 *)k_cache, (const uint4 *)v_cache,
                                    (__nv_bfloat16 *)out, ctx, group, head_tiles, cache_stride, scale_log2),
            "attn_decode opt_cluster: launch");
  KLAB_CHECK_LAUNCH(err, "attn_decode opt_cluster");
  return 0;
}

template <int D>
static int launch_cluster_gt(int64_t heads_per_tile, const uint16_t *q, const uint16_t *k_cache, const uint16_t *v_cache,
                             uint16_t *out, int ctx, int group, int head_tiles, int tiles, int cache_stride, int sm_count,
                             cudaStream_t stream, klab_err *err) {
  switch (heads_per_tile) {
    case 1: return launch_cluster<D, 1>(q, k_cache, v_cache, out, ctx, group, head_tiles, tiles, cache_stride, sm_count, stream, err);
    case 2: return launch_cluster<D, 2>(q, k_cache, v_cache, out, ctx, group, head_tiles, tiles, cache_stride, sm_count, stream, err);
    case 4: return launch_cluster<D, 4>(q, k_cache, v_cache, out, ctx, group, head_tiles, tiles, cache_stride, sm_count, stream, err);
    default: return launch_cluster<D, 8>(q, k_cache, v_cache, out, ctx, group, head_tiles, tiles, cache_stride, sm_count, stream, err);
  }
}

extern "C" int attn_decode_opt_cluster(const uint16_t *q, const uint16_t *k_cache, const uint16_t *v_cache, uint16_t *out,
                                       const int32_t *ctx_dev, int64_t ctx, int64_t HQ, int64_t HKV, int64_t D,
                                       int64_t cache_stride, void *workspace, size_t workspace_bytes, cudaStream_t stream,
                                       klab_err *err) {
  (void)workspace, (void)workspace_bytes;  // the merge lives in distributed shared memory
  if (attn_decode_check_args("opt_cluster", q, k_cache, v_cache, out, ctx_dev, ctx, HQ, HKV, D, cache_stride, err)) return -1;
  if (ctx_dev)
    return klab_fail(err, "attn_decode opt_cluster: a device ctx is not supported (host ctx only; HQ=%lld HKV=%lld D=%lld)",
                     (long long)HQ, (long long)HKV, (long long)D);
  if (D != 64 && D != 128)
    return klab_fail(err, "attn_decode opt_cluster: D=%lld unsupported (64 or 128)", (long long)D);
  if ((uintptr_t)q % 16 || (uintptr_t)k_cache % 16 || (uintptr_t)v_cache % 16 || (uintptr_t)out % 16)
    return klab_fail(err, "attn_decode opt_cluster: q, k_cache, v_cache and out must be 16-byte aligned (HQ=%lld HKV=%lld "
                          "D=%lld)", (long long)HQ, (long long)HKV, (long long)D);
  const int64_t group = HQ / HKV;
  const int64_t heads_per_tile = group <= 1 ? 1 : group <= 2 ? 2 : group <= 4 ? 4 : 8;
  const int64_t head_tiles = (group + heads_per_tile - 1) / heads_per_tile, tiles = HKV * head_tiles;
  if (tiles > 65535)
    return klab_fail(err, "attn_decode opt_cluster: %lld KV-head tiles exceed the grid (HQ=%lld HKV=%lld)", (long long)tiles,
                     (long long)HQ, (long long)HKV);
  int device = 0, sm_count = 0;
  KLAB_CUDA(err, cudaGetDevice(&device), "attn_decode opt_cluster: device");
  KLAB_CUDA(err, cudaDeviceGetAttribute(&sm_count, cudaDevAttrMultiProcessorCount, device), "attn_decode opt_cluster: SM count");
  if (sm_count < 1) sm_count = 1;
  if (D == 64)
    return launch_cluster_gt<64>(heads_per_tile, q, k_cache, v_cache, out, (int)ctx, (int)group, (int)head_tiles, (int)tiles,
                                 (int)cache_stride, sm_count, stream, err);
  return launch_cluster_gt<128>(heads_per_tile, q, k_cache, v_cache, out, (int)ctx, (int)group, (int)head_tiles, (int)tiles,
                                (int)cache_stride, sm_count, stream, err);
}
