// attn_decode, optimized: split-K flash-decoding with the merge fused into the same kernel (split.cuh has
// the per-block part: tiles, mma scores, online softmax, P.V, warps combined).
//
// Grid (slots, KV-head tiles). Each block writes its (m, l, unnormalised out) per query head to the
// workspace; the last block of each KV-head tile to arrive (one atomic counter per tile) merges them:
// - Arrival: every thread stores its part of the partial, fences, the block synchronises, and one thread
//   counts the block in. The last block's threads each own one (head, 4 dims) item, or a slice of the slots
//   of one (TPI threads per item), and load (m, l) and the partial out of all their slots in ONE batch of
//   L2 loads (no separate pass for the weights), merge them online (log-sum-exp), then butterfly-merge
//   across the TPI lanes. (Step 1 merged in two dependent passes, 8 slots per round trip.)
// - A chunk that covers the whole context (active == 1: short contexts) writes out directly: no partials,
//   no counter, no memset.
// - The counters are cleared by a cudaMemsetAsync of 4 * tiles bytes before each launch that can need them
//   (grid.x > 1): the workspace may be uninitialised (the gate and tests/test_gpu_attn_decode.c hand garbage,
//   graph replays included), and no in-kernel scheme can tell a valid counter from garbage. CUPTI kernel
//   time does not include it; the CUDA-event column and a graph's memset node do. The last block of a tile
//   also sets its counter back to zero, so attn_decode_optimized_nomemset (the engine's entry) skips the
//   memset after its caller zeroed the workspace once.
// Host ctx: the grid has exactly `active` slots (no idle blocks). Device ctx (CUDA-graph decode): the grid
// is sized for cache_stride and blocks past ctx exit at once.
//
// The EXTRA variants (variants.h) run the same kernel with other block shapes / slot caps / no prefetch.
#include <math.h>
#include <stdint.h>
#include "kernels/attn_decode/args.h"
#include "kernels/attn_decode/attn_decode.h"
#include "kernels/attn_decode/split.cuh"
#include "kernels/attn_decode/variants.h"
#include "kernels/common/launch.cuh"

template <int D, int GT, int WARPS>
struct split_smem {
  attn_block_smem<D, GT, WARPS> blk;
  int is_last;
};

// Workspace per (tile, slot, head of the tile): part_ml = (m, l) in the log2 domain, part_acc[D/4] = sum over
// the chunk of 2^(s - m) * v. Index (tile * gridDim.x + slot) * GT + head.
template <int D, int GT, int WARPS, bool PREFETCH>
__global__ void __launch_bounds__(WARPS * 32)
attn_decode_split_kernel(const uint4 *__restrict__ q, const uint4 *__restrict__ k_cache, const uint4 *__restrict__ v_cache,
                         __nv_bfloat16 *__restrict__ out, const int32_t *__restrict__ ctx_dev, int ctx_host, int group,
                         int head_tiles, int cache_stride, float scale_log2, float2 *__restrict__ part_ml,
                         float4 *__restrict__ part_acc, unsigned *__restrict__ counters, int early_prefetch) {
  constexpr int THREADS = WARPS * 32, D4 = D / 4, D8 = D / 8;
  __shared__ split_smem<D, GT, WARPS> sm;
  if (early_prefetch) {
    // Before the programmatic-dependent-launch wait, warp 0 asks L2 for this block's K and V rows (bulk
    // prefetches), so their DRAM time overlaps the kernel before us and the loads after the wait hit L2. Only
    // hints depend on what is read here: the ctx value (clamped into the cache) picks the rows to prefetch, and
    // a prefetch changes no data, so a ctx or a row still being written by an earlier kernel can cost
    // bandwidth, never correctness. In the engine's decode graph neither is (only q and row ctx - 1 come from
    // the kernels before us; row ctx - 1 is not prefetched).
    klab_pdl_launch_dependents();
    if (threadIdx.x < 32) {
      const int c = attn_decode_ctx(ctx_dev, ctx_host, cache_stride);
      const int chunk = c > 0 ? attn_split_chunk(c, (int)gridDim.x, WARPS * ATTN_TILE) : 0;
      const int begin = (int)blockIdx.x * chunk, end = min(begin + chunk, c - 1);
      if (c > 0 && end > begin) {
        const int kv = (int)blockIdx.y / head_tiles;
        const char *kp = (const char *)(k_cache + ((int64_t)kv * cache_stride + begin) * D8);
        const char *vp = (const char *)(v_cache + ((int64_t)kv * cache_stride + begin) * D8);
        const int64_t bytes = (int64_t)(end - begin) * D * 2;
        constexpr int PIECE = 4096;  // bytes per bulk prefetch: rows of D * 2 = 128 or 256 bytes, 16-aligned
        for (int64_t off = (int64_t)(threadIdx.x % 32) * PIECE; off < bytes; off += 32 * PIECE) {
          const unsigned n = (unsigned)min((int64_t)PIECE, bytes - off);
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900  // bulk prefetch is sm_90+; older builds skip the hint
          asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(kp + off), "r"(n) : "memory");
          asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(vp + off), "r"(n) : "memory");
#endif
        }
      }
    }
    klab_pdl_wait();
  } else {
    klab_pdl_enter();  // q, the cache rows of this step and the device ctx come from the kernels before us
  }

  const int nslots = (int)gridDim.x, slot = (int)blockIdx.x, tile = (int)blockIdx.y;
  const int kv_head = tile / head_tiles, head_tile = tile % head_tiles;
  const int first_head = kv_head * group + head_tile * GT;
  const int nheads = min(GT, group - head_tile * GT);

  const int ctx = attn_decode_ctx(ctx_dev, ctx_host, cache_stride);
  if (ctx == 0) {  // only a device ctx can be 0: nothing to attend to, the output is zero
    if (slot == 0)
      for (int i = threadIdx.x; i < nheads * D; i += THREADS) out[(int64_t)first_head * D + i] = __float2bfloat16(0.f);
    return;
  }
  const int chunk = attn_split_chunk(ctx, nslots, WARPS * ATTN_TILE);
  const int active = attn_split_active(ctx, chunk);  // <= nslots
  if (slot >= active) return;  // past ctx (device ctx below the grid's size): no work, not counted
  const int chunk_begin = slot * chunk;
  const int chunk_end = chunk_begin + min(chunk, ctx - chunk_begin);

  warp_attend<D, GT, WARPS, PREFETCH>(sm.blk, q + (int64_t)first_head * D8, k_cache + (int64_t)kv_head * cache_stride * D8,
                                      v_cache + (int64_t)kv_head * cache_stride * D8, nheads, chunk_begin, chunk_end,
                                      scale_log2);
  __syncthreads();

  // ---- the block's partial per query head; a single chunk is the whole answer ----
  const bool direct = active == 1;
  const int64_t part_head0 = ((int64_t)tile * nslots + slot) * GT;  // (tile, slot, head 0 of the tile)
  for (int i = threadIdx.x; i < nheads * D4; i += THREADS) {
    const int h = i / D4, d4 = i % D4;
    float m, l;
    float4 o;
    block_combine<D, GT, WARPS>(sm.blk, h, d4, &m, &l, &o);
    if (direct) {
      store_out4<D>(out, first_head + h, d4, o, 1.f / l);  // l >= 1: warp 0 holds the chunk's first position
    } else {
      part_acc[(part_head0 + h) * D4 + d4] = o;
      if (d4 == 0) part_ml[part_head0 + h] = make_float2(m, l);
    }
  }
  if (direct) return;

  // ---- arrival: the last block of this tile merges every chunk ----
  __threadfence();  // this thread's partial stores are visible device-wide before the block is counted
  __syncthreads();
  if (threadIdx.x == 0) {
    sm.is_last = atomicAdd(&counters[tile], 1u) == (unsigned)(active - 1);
    // Every block of the tile has arrived: leave the counter zero for the next launch (the _nomemset entry
    // relies on it; after the launcher's memset it is merely tidy).
    if (sm.is_last) counters[tile] = 0u;
  }
  __syncthreads();
  if (!sm.is_last) return;
  __threadfence();  // acquire side: the other blocks' partials are read after their arrivals were seen

  // TPI threads per (head, 4 dims) item, each over slots sub, sub + TPI, ...; loads of up to MB slots per
  // thread in flight at once. Loads go through L2 (__ldcg): the partials were written by other SMs.
  constexpr int ITEMS_MAX = GT * D4;
  constexpr int TPI = THREADS >= ITEMS_MAX ? THREADS / ITEMS_MAX : 1;
  constexpr int ITEM_STEP = THREADS / TPI;  // divides ITEMS_MAX (powers of two): every thread loops alike
  constexpr int MB = 16 / TPI > 2 ? 16 / TPI : 2;
  static_assert(ITEMS_MAX % ITEM_STEP == 0, "the merge loop must be uniform across the block");
  const int sub = threadIdx.x % TPI;
  const int64_t tile_head0 = (int64_t)tile * nslots * GT;  // (tile, slot 0, head 0); slot stride GT
  for (int item0 = 0; item0 < ITEMS_MAX; item0 += ITEM_STEP) {
    const int item = item0 + threadIdx.x / TPI;
    const int h = item / D4, d4 = item % D4;
    const bool valid = h < nheads;
    float M = -INFINITY, L = 0.f;
    float4 O = make_float4(0.f, 0.f, 0.f, 0.f);
    if (valid) {
      for (int s0 = sub; s0 < active; s0 += TPI * MB) {
        float2 ml[MB];
        float4 part[MB];
#pragma unroll
        for (int j = 0; j < MB; j++) {
          const int s = s0 + TPI * j;
          const int64_t idx = tile_head0 + (int64_t)s * GT + h;
          ml[j] = s < active ? __ldcg(part_ml + idx) : make_float2(-INFINITY, 0.f);
          part[j] = s < active ? __ldcg(part_acc + idx * D4 + d4) : make_float4(0.f, 0.f, 0.f, 0.f);
        }
#pragma unroll
        for (int j = 0; j < MB; j++) lse_merge(M, L, O, ml[j].x, ml[j].y, part[j]);
      }
    }
#pragma unroll
    for (int offset = 1; offset < TPI; offset *= 2) lse_merge_lane(M, L, O, offset);
    // L >= 1: the slot holding the maximum has l >= 1.
    if (valid && sub == 0) store_out4<D>(out, first_head + h, d4, O, 1.f / L);
  }
}

// ---- host side: configurations, workspace layout, slot choice, dispatch ----
// The engine's entry (_nomemset) asks L2 for the old KV rows before its PDL wait (see the kernel): H100,
// Qwen3-4B decode +0.6% at ctx <= 640, level at ctx ~2200 (docs/ops/attn_decode.md, step 7). The lab's
// variants do not: launched alone there is nothing to overlap. KLAB_ATTN_NO_EARLY_PREFETCH builds the
// engine without it (the A/B knob, ci/gpu-knobs.sh).
#ifdef KLAB_ATTN_NO_EARLY_PREFETCH
#define ATTN_ENGINE_EARLY_PREFETCH 0
#else
#define ATTN_ENGINE_EARLY_PREFETCH 1
#endif
typedef struct {
  const char *name;
  int warps;          /* warps per block (8 or 4): the chunk granule is warps * 16 positions */
  int prefetch;       /* next tile's loads issued before the current tile's softmax and P.V */
  int slot_cap;       /* most chunks per KV-head tile: the merge reads slot_cap partials */
  int blocks_per_sm;  /* grid target: slots = ceil(blocks_per_sm * SMs / tiles) */
} split_config;

/* optimized: 8-warp blocks, one per SM, at most 16 chunks per tile (128 blocks for 8 KV heads). */
static const split_config CFG_OPTIMIZED = {"optimized", 8, 1, 16, 1};
static const split_config CFG_NOPF = {"opt_nopf", 8, 0, 16, 1};
/* Step 1's block shape (4 warps, 64-position granule, up to 32 chunks, ~4 blocks per SM), new tail. */
static const split_config CFG_W4 = {"opt_w4", 4, 0, 32, 4};

typedef struct {
  int64_t group, heads_per_tile, head_tiles, tiles;
  size_t ml_offset, acc_offset, total; /* counters at offset 0 */
} split_layout;

static size_t round_up_256(size_t n) { return (n + 255) / 256 * 256; }

static int64_t heads_per_tile_for(int64_t group) { return group <= 1 ? 1 : group <= 2 ? 2 : group <= 4 ? 4 : 8; }

static void make_layout(int64_t HQ, int64_t HKV, int64_t D, int64_t nslots, split_layout *L) {
  L->group = HQ / HKV;
  L->heads_per_tile = heads_per_tile_for(L->group);
  L->head_tiles = (L->group + L->heads_per_tile - 1) / L->heads_per_tile;
  L->tiles = HKV * L->head_tiles;
  const size_t partials = (size_t)L->tiles * (size_t)nslots * (size_t)L->heads_per_tile;
  L->ml_offset = round_up_256((size_t)L->tiles * sizeof(unsigned));
  L->acc_offset = L->ml_offset + round_up_256(partials * 2 * sizeof(float));
  L->total = L->acc_offset + partials * (size_t)D * sizeof(float);
}

/* The most slots any ctx <= max_ctx can use: one granule each at least, at most the cap. */
static int64_t max_slots_for(const split_config *cfg, int64_t max_ctx) {
  const int64_t granule = (int64_t)cfg->warps * ATTN_TILE;
  const int64_t useful = (max_ctx + granule - 1) / granule;
  return useful < cfg->slot_cap ? useful : cfg->slot_cap;
}

static size_t workspace_for(const split_config *cfg, int64_t HQ, int64_t HKV, int64_t D, int64_t max_ctx) {
  if (HQ < 1 || HKV < 1 || D < 1 || max_ctx < 1 || HQ % HKV != 0 || max_ctx > KLAB_ATTN_DECODE_MAX_CTX) return 0;
  split_layout L;
  make_layout(HQ, HKV, D, max_slots_for(cfg, max_ctx), &L);
  return L.total;
}

extern "C" size_t attn_decode_workspace_bytes(int64_t HQ, int64_t HKV, int64_t D, int64_t max_ctx) {
  return workspace_for(&CFG_OPTIMIZED, HQ, HKV, D, max_ctx);
}
extern "C" size_t attn_decode_opt_nopf_workspace_bytes(int64_t HQ, int64_t HKV, int64_t D, int64_t max_ctx) {
  return workspace_for(&CFG_NOPF, HQ, HKV, D, max_ctx);
}
extern "C" size_t attn_decode_opt_w4_workspace_bytes(int64_t HQ, int64_t HKV, int64_t D, int64_t max_ctx) {
  return workspace_for(&CFG_W4, HQ, HKV, D, max_ctx);
}

template <int D, int GT, int WARPS, bool PREFETCH>
static int launch_split(const uint16_t *q, const uint16_t *k_cache, const uint16_t *v_cache, uint16_t *out,
                        const int32_t *ctx_dev, int ctx, const split_layout *L, int cache_stride, int nslots, char *ws,
                        int early_prefetch, cudaStream_t stream, klab_err *err, const char *what) {
  const float scale_log2 = (float)(ATTN_LOG2E / sqrt((double)D));
  const dim3 grid((unsigned)nslots, (unsigned)L->tiles);
  KLAB_LAUNCH(err, what, grid, WARPS * 32, 0, stream, attn_decode_split_kernel<D, GT, WARPS, PREFETCH>, (const uint4 *)q,
              (const uint4 *)k_cache, (const uint4 *)v_cache, (__nv_bfloat16 *)out, ctx_dev, ctx, (int)L->group,
              (int)L->head_tiles, cache_stride, scale_log2, (float2 *)(ws + L->ml_offset), (float4 *)(ws + L->acc_offset),
              (unsigned *)ws, early_prefetch);
  return 0;
}

template <int D, int WARPS, bool PREFETCH>
static int launch_gt(const uint16_t *q, const uint16_t *k_cache, const uint16_t *v_cache, uint16_t *out,
                     const int32_t *ctx_dev, int ctx, const split_layout *L, int cache_stride, int nslots, char *ws,
                     int early_prefetch, cudaStream_t stream, klab_err *err, const char *what) {
  switch (L->heads_per_tile) {
    case 1: return launch_split<D, 1, WARPS, PREFETCH>(q, k_cache, v_cache, out, ctx_dev, ctx, L, cache_stride, nslots, ws, early_prefetch, stream, err, what);
    case 2: return launch_split<D, 2, WARPS, PREFETCH>(q, k_cache, v_cache, out, ctx_dev, ctx, L, cache_stride, nslots, ws, early_prefetch, stream, err, what);
    case 4: return launch_split<D, 4, WARPS, PREFETCH>(q, k_cache, v_cache, out, ctx_dev, ctx, L, cache_stride, nslots, ws, early_prefetch, stream, err, what);
    default: return launch_split<D, 8, WARPS, PREFETCH>(q, k_cache, v_cache, out, ctx_dev, ctx, L, cache_stride, nslots, ws, early_prefetch, stream, err, what);
  }
}

template <int WARPS, bool PREFETCH>
static int launch_d(int64_t D, const uint16_t *q, const uint16_t *k_cache, const uint16_t *v_cache, uint16_t *out,
                    const int32_t *ctx_dev, int ctx, const split_layout *L, int cache_stride, int nslots, char *ws,
                    int early_prefetch, cudaStream_t stream, klab_err *err, const char *what) {
  if (D == 64) return launch_gt<64, WARPS, PREFETCH>(q, k_cache, v_cache, out, ctx_dev, ctx, L, cache_stride, nslots, ws, early_prefetch, stream, err, what);
  return launch_gt<128, WARPS, PREFETCH>(q, k_cache, v_cache, out, ctx_dev, ctx, L, cache_stride, nslots, ws, early_prefetch, stream, err, what);
}

static int run_config(const split_config *cfg, int clear_counters, int early_prefetch, const uint16_t *q, const uint16_t *k_cache,
                      const uint16_t *v_cache, uint16_t *out, const int32_t *ctx_dev, int64_t ctx, int64_t HQ, int64_t HKV,
                      int64_t D, int64_t cache_stride, void *workspace, size_t workspace_bytes, cudaStream_t stream,
                      klab_err *err) {
  if (attn_decode_check_args(cfg->name, q, k_cache, v_cache, out, ctx_dev, ctx, HQ, HKV, D, cache_stride, err)) return -1;
  if (D != 64 && D != 128)
    return klab_fail(err, "attn_decode %s: D=%lld unsupported (64 or 128; naive takes any D <= %d)", cfg->name, (long long)D,
                     KLAB_ATTN_DECODE_NAIVE_MAX_D);
  if ((uintptr_t)q % 16 || (uintptr_t)k_cache % 16 || (uintptr_t)v_cache % 16 || (uintptr_t)out % 16 ||
      (uintptr_t)workspace % 16)
    return klab_fail(err, "attn_decode %s: q, k_cache, v_cache, out and workspace must be 16-byte aligned "
                          "(HQ=%lld HKV=%lld D=%lld)", cfg->name, (long long)HQ, (long long)HKV, (long long)D);
  int device = 0, sm_count = 0;
  KLAB_CUDA(err, cudaGetDevice(&device), "attn_decode optimized: device");
  KLAB_CUDA(err, cudaDeviceGetAttribute(&sm_count, cudaDevAttrMultiProcessorCount, device), "attn_decode optimized: SM count");
  if (sm_count < 1) sm_count = 1;

  // Slots per KV-head tile: blocks_per_sm * SMs blocks in all, at most one per granule of positions, at most
  // the cap. A device ctx sizes the grid for the whole cache (blocks past ctx exit at once); a host ctx
  // launches exactly the slots that hold positions.
  split_layout L;
  make_layout(HQ, HKV, D, 1, &L);
  if (L.tiles > 65535)
    return klab_fail(err, "attn_decode %s: %lld KV-head tiles exceed the grid (HQ=%lld HKV=%lld)", cfg->name,
                     (long long)L.tiles, (long long)HQ, (long long)HKV);
  const int64_t sizing_ctx = ctx_dev ? cache_stride : ctx;
  int64_t nslots = ((int64_t)sm_count * cfg->blocks_per_sm + L.tiles - 1) / L.tiles;
  if (nslots > max_slots_for(cfg, sizing_ctx)) nslots = max_slots_for(cfg, sizing_ctx);
  if (nslots < 1) nslots = 1;
  if (!ctx_dev) {
    const int granule = cfg->warps * ATTN_TILE;
    nslots = attn_split_active((int)ctx, attn_split_chunk((int)ctx, (int)nslots, granule));
  }
  make_layout(HQ, HKV, D, nslots, &L);
  if (!workspace || workspace_bytes < L.total)
    return klab_fail(err, "attn_decode %s: workspace of %zu bytes, needs %zu (HQ=%lld HKV=%lld D=%lld ctx=%lld "
                          "cache_stride=%lld; attn_decode_workspace_bytes gives it)", cfg->name, workspace_bytes, L.total,
                     (long long)HQ, (long long)HKV, (long long)D, (long long)ctx, (long long)cache_stride);

  char *ws = (char *)workspace;
  // Only a launch of more than one slot can count arrivals (a single slot writes out directly).
  if (nslots > 1 && clear_counters)
    KLAB_CUDA(err, cudaMemsetAsync(ws, 0, (size_t)L.tiles * sizeof(unsigned), stream), "attn_decode optimized: clear counters");
  const int host_ctx = ctx_dev ? 0 : (int)ctx;
  const char *what = ctx_dev ? "attn_decode split kernel (device ctx)" : "attn_decode split kernel";
  if (cfg->warps == 4)
    return launch_d<4, false>(D, q, k_cache, v_cache, out, ctx_dev, host_ctx, &L, (int)cache_stride, (int)nslots, ws, early_prefetch, stream, err, what);
  if (cfg->prefetch)
    return launch_d<8, true>(D, q, k_cache, v_cache, out, ctx_dev, host_ctx, &L, (int)cache_stride, (int)nslots, ws, early_prefetch, stream, err, what);
  return launch_d<8, false>(D, q, k_cache, v_cache, out, ctx_dev, host_ctx, &L, (int)cache_stride, (int)nslots, ws, early_prefetch, stream, err, what);
}

extern "C" int attn_decode_optimized(const uint16_t *q, const uint16_t *k_cache, const uint16_t *v_cache, uint16_t *out,
                                     const int32_t *ctx_dev, int64_t ctx, int64_t HQ, int64_t HKV, int64_t D,
                                     int64_t cache_stride, void *workspace, size_t workspace_bytes, cudaStream_t stream,
                                     klab_err *err) {
  return run_config(&CFG_OPTIMIZED, 1, 0, q, k_cache, v_cache, out, ctx_dev, ctx, HQ, HKV, D, cache_stride, workspace,
                    workspace_bytes, stream, err);
}
extern "C" int attn_decode_opt_nopf(const uint16_t *q, const uint16_t *k_cache, const uint16_t *v_cache, uint16_t *out,
                                    const int32_t *ctx_dev, int64_t ctx, int64_t HQ, int64_t HKV, int64_t D,
                                    int64_t cache_stride, void *workspace, size_t workspace_bytes, cudaStream_t stream,
                                    klab_err *err) {
  return run_config(&CFG_NOPF, 1, 0, q, k_cache, v_cache, out, ctx_dev, ctx, HQ, HKV, D, cache_stride, workspace,
                    workspace_bytes, stream, err);
}
extern "C" int attn_decode_opt_w4(const uint16_t *q, const uint16_t *k_cache, const uint16_t *v_cache, uint16_t *out,
                                  const int32_t *ctx_dev, int64_t ctx, int64_t HQ, int64_t HKV, int64_t D,
                                  int64_t cache_stride, void *workspace, size_t workspace_bytes, cudaStream_t stream,
                                  klab_err *err) {
  return run_config(&CFG_W4, 1, 0, q, k_cache, v_cache, out, ctx_dev, ctx, HQ, HKV, D, cache_stride, workspace,
                    workspace_bytes, stream, err);
}
extern "C" int attn_decode_optimized_nomemset(const uint16_t *q, const uint16_t *k_cache, const uint16_t *v_cache, uint16_t *out,
                                              const int32_t *ctx_dev, int64_t ctx, int64_t HQ, int64_t HKV, int64_t D,
                                              int64_t cache_stride, void *workspace, size_t workspace_bytes,
                                              cudaStream_t stream, klab_err *err) {
  return run_config(&CFG_OPTIMIZED, 0, ATTN_ENGINE_EARLY_PREFETCH, q, k_cache, v_cache, out, ctx_dev, ctx, HQ, HKV, D, cache_stride, workspace,
                    workspace_bytes, stream, err);
}
