// gemm on Hopper (sm_90a): wgmma + TMA + mbarrier ring, warp-specialised and persistent.
//
// CTA = 3 warpgroups (384 threads; 2 for 64-row tiles), one CTA per SM, grid = min(tiles, SMs); each CTA walks tiles
// blockIdx.x, +gridDim.x, ... of a grouped raster (16 tile-rows of C advance together, so the W tiles
// of resident CTAs are shared through L2).
//  - warpgroup 0, the producer: one thread issues TMA loads (cp.async.bulk.tensor.2d) of the A tile
//    [BM x 64] and the W tile [BN x 64] of each k-block into a ring of STAGES shared-memory stages.
//    Each stage has a "full" mbarrier (the producer's arrive.expect_tx, completed by the TMA byte count)
//    and an "empty" mbarrier (one arrival per consumer warp once its wgmmas have read the stage). The
//    producer gives most of its registers away (setmaxnreg.dec 40).
//  - warpgroups 1 and 2, the consumers (setmaxnreg.inc 232): rows 0-63 and 64-127 of the tile (a 64-row
//    tile has warpgroup 1 only). Per
//    k-block: wait "full", 4 x wgmma.mma_async m64nBNk16 (bf16 in, fp32 accumulators in registers),
//    commit, wait until the previous k-block's group is done and arrive on its stage's "empty". After
//    the last k-block of a tile: convert to bf16 into a shared-memory buffer of C boxes that one thread
//    hands to TMA stores, and go on with the next tile (the producer is already filling the ring for it).
// Shared layout = TMA's 128-byte swizzle: each tile row is 64 bf16 = 128 bytes; within every 1024-byte
// group of 8 rows, 16-byte chunk c of row r sits at chunk c ^ (r % 8). The wgmma descriptors describe
// exactly that (K-major, swizzle mode 128B, 8-row groups 1024 bytes apart); stages are 1024-byte aligned
// so the swizzle phase is the row index, and stepping k by 16 adds 32 bytes to the start address.
// Tails: TMA zero-fills the parts of a box outside [rows, K] (and still counts the full box bytes), and
// clips the stored boxes at the edges of C, so M, N and K tails need no special code. TMA needs 16-byte
// row strides (K % 8 == 0; N % 8 == 0 for the stores, else the direct masked stores) and 16-byte aligned
// base addresses.
// Tiles: BM = 128 rows by BN = 256 (4 stages of 48 KiB), 192 (5 x 40 KiB), 160 (5 x 36 KiB), 128 (6 x 32 KiB)
// or 80 (7 x 26 KiB; C boxes of 16 columns), or BM = 64 by BN = 160 (7 x 28 KiB, one consumer warpgroup).
// The launcher takes the tile with the fewest estimated waves x tile cost, see pick_tile(); `wgmma_mc2` runs
// the 128-row tiles as 2-CTA clusters that share the W tile through TMA multicast (CLUSTER = 2 below).
// gemm_wgmma_skinny (M <= 16) runs it with the operands swapped on 64 x 16 tiles and stores C transposed (TRANS_C),
// optionally with each tile's k-blocks split over a cluster (KSPLIT) or a shallower ring (STAGE_CAP).
#include <cuda.h>          // CUtensorMap and its enums (types only: no -lcuda, the entry point comes from cudart)
#include <cudaTypedefs.h>  // PFN_cuTensorMapEncodeTiled_v12000
#include <cuda_bf16.h>
#include <stdint.h>
#include <string.h>
#include "kernels/gemm/gemm.h"
#include "kernels/common/mbarrier.cuh"

#define WG_BK 64           // k per stage: one 128-byte swizzle row of bf16
#define WG_GROUP_M 16      // tile-rows per raster group
#define WG_PRODUCER_REGS 40
#define WG_CONSUMER_REGS 232  // 128*40 + 256*232 = 64512 <= 65536 registers per SM

// Columns of the C boxes the TMA epilogue stores (device config and host tensor map alike): 32 (64-byte rows,
// 64B swizzle) where the tile width is a multiple of 32, else 16 (32-byte rows, 32B swizzle).
static constexpr int wg_box_cols(int bn) { return bn % 32 == 0 ? 32 : 16; }

// BM (tile rows) is 128 (two consumer warpgroups of 64 rows) or 64 (one consumer warpgroup).
// B_RES 1 (skinny launches, one tile column): the W-side operand of every k-block is loaded once per CTA into a
// resident buffer of RES_BYTES (K <= RES_BYTES / (BN * 128)), and the ring carries only A.
// KSPLIT > 1 (skinny launches): the KSPLIT CTAs of a cluster split the k-blocks of one tile; ranks 1.. write their
// fp32 partial tiles into rank 0's shared memory (RED_BYTES), which adds them in rank order and stores the tile.
// STAGE_CAP: at most this many ring stages (skinny launches: 10 stages measured 7-8% faster than 16 on 96 tiles,
// docs/ops/gemv.md round 10).
template <int BM, int BN, int B_RES = 0, int KSPLIT = 1, int STAGE_CAP = 16>
struct wg_config {
  static_assert(BN == 16 || BN == 80 || BN == 128 || BN == 160 || BN == 192 || BN == 256, "tile widths with a wgmma wrapper below");
  static_assert(BM == 64 || BM == 128, "64 rows per consumer warpgroup, one or two of them");
  static constexpr int CONSUMERS = BM / 64;
  static constexpr int CONSUMER_WARPS = 4 * CONSUMERS;
  static constexpr int THREADS = 128 * (1 + CONSUMERS);  // the producer warpgroup + the consumers
  static constexpr int A_BYTES = BM * WG_BK * 2;     // 8 or 16 KiB
  static constexpr int B_TILE_BYTES = BN * WG_BK * 2;  // one k-block of the W-side operand: 2 to 32 KiB
  static constexpr int B_BYTES = B_RES ? 0 : B_TILE_BYTES;  // in each ring stage
  static_assert(KSPLIT >= 1 && KSPLIT <= 8, "k split over a portable cluster");
  static constexpr int RES_BYTES = B_RES ? 128 * 1024 : 0;
  static constexpr int RED_BYTES = (KSPLIT - 1) * BM * BN * 4;  // the partial tiles of ranks 1.. (fp32)
  static constexpr int RES_KBLOCKS = B_RES ? RES_BYTES / B_TILE_BYTES : 0;
  static constexpr int STAGE_BYTES = A_BYTES + B_BYTES;
  // C leaves by TMA stores in boxes of 64 rows x BOX_COLS columns (wg_box_cols). TMA swizzles 16-byte chunk c
  // of row r to c ^ ((r * BOX_ROW_BYTES / 128) % CHUNKS).
  static constexpr int BOX_COLS = wg_box_cols(BN);
  static constexpr int BOX_ROW_BYTES = BOX_COLS * 2;
  static constexpr int BOX_BYTES = 64 * BOX_ROW_BYTES;
  static constexpr int CHUNKS = BOX_ROW_BYTES / 16;  // 16-byte chunks per box row: 4 or 2
  // Epilogue buffer per consumer warpgroup: its 64 x BN part of the tile goes out in BN / BOX_COLS boxes,
  // EPI_BOXES at a time (rounds): 256: 4 of 8 (2 rounds), 192: 3 of 6 (2), 160: 5 (1), 128: 4 (1), 80: 5 of 16 columns (1).
  static constexpr int EPI_BOXES = BN == 256 ? 4 : BN == 192 ? 3 : BN == 160 ? 5 : BN == 80 ? 5 : BN == 16 ? 1 : 4;
  static constexpr int EPI_ROUNDS = BN / BOX_COLS / EPI_BOXES;
  static_assert(EPI_ROUNDS * EPI_BOXES * BOX_COLS == BN, "the epilogue rounds cover the tile width");
  static constexpr int EPI_BYTES = CONSUMERS * EPI_BOXES * BOX_BYTES;
  // The ring takes what the epilogue buffer, 1024 bytes of slack (to align the ring to the swizzle period) and
  // the barriers leave of 227 KiB, at most 8 stages (16 of the small stages of BN 16). BM 128: 4 x 48 KiB (256),
  // 5 x 40 KiB (192), 5 x 36 KiB (160), 6 x 32 KiB (128), 7 x 26 KiB (80); BM 64: 7 x 28 KiB (160), 16 x 10 KiB (16;
  // also with a 2-way k split; 10 with STAGE_CAP 10), 11 x 8 KiB (16 with a resident B).
  static constexpr int STAGE_LIMIT = STAGE_BYTES <= 16384 ? 16 : 8;
  static constexpr int MAX_STAGES = STAGE_LIMIT < STAGE_CAP ? STAGE_LIMIT : STAGE_CAP;
  static constexpr int RING_BUDGET = 227 * 1024 - 1024 - EPI_BYTES - RES_BYTES - RED_BYTES - 2 * MAX_STAGES * 8 - 8;
  static constexpr int STAGES = RING_BUDGET / STAGE_BYTES < MAX_STAGES ? RING_BUDGET / STAGE_BYTES : MAX_STAGES;
  // The slack, the ring, the resident B, the epilogue buffers, the partial tiles, then full[] and empty[]
  // barriers and the resident B's barrier.
  static constexpr int SMEM_BYTES = 1024 + STAGES * STAGE_BYTES + RES_BYTES + EPI_BYTES + RED_BYTES + 2 * STAGES * 8 + 8;
  static_assert(STAGES >= 3, "two stages are held by the wgmma group in flight and its predecessor");
  static_assert(SMEM_BYTES <= 227 * 1024, "the ring exceeds the 227 KiB opt-in shared memory");
  // The wgmma descriptors assume every stage starts on a 1024-byte swizzle period (base offset 0).
  static_assert(A_BYTES % 1024 == 0 && B_BYTES % 1024 == 0, "A and B stages must stay 1024-aligned");
};
// In 2-CTA clusters each CTA multicasts half of the W tile (BN / 2 rows): that half must start on a period too.
static_assert(wg_config<128, 80>::B_BYTES % 2048 == 0 && wg_config<128, 160>::B_BYTES % 2048 == 0 &&
                  wg_config<128, 192>::B_BYTES % 2048 == 0,
              "B stages and their halves must stay 1024-aligned");

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define WG_DEVICE_OK 1
#endif

// ---- device helpers (PTX for sm_90a) ----
#ifdef WG_DEVICE_OK
// TMA: box at (k0, row0) of the tensor map into shared memory; completion counted on bar in bytes.
static __device__ __forceinline__ void tma_load_2d(uint32_t dst, const CUtensorMap *map, uint32_t bar, int k0, int row0) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(k0), "r"(row0), "r"(bar)
      : "memory");
}
// The same load multicast to every CTA of the cluster in cta_mask: each receives the box at the same shared
// offset dst and the byte count on its own mbarrier at offset bar.
static __device__ __forceinline__ void tma_load_2d_multicast(uint32_t dst, const CUtensorMap *map, uint32_t bar, int k0, int row0,
                                                             uint16_t cta_mask) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes.multicast::cluster [%0], [%1, {%2, %3}], [%4], %5;\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(k0), "r"(row0), "r"(bar), "h"(cta_mask)
      : "memory");
}
// Arrive on the mbarrier at shared offset bar of CTA `rank` of this cluster (default semantics: release, CTA scope).
static __device__ __forceinline__ void mbar_arrive_in_cta(uint32_t bar, uint32_t rank) {
  asm volatile(
      "{\n"
      ".reg .b32 remote;\n"
      "mapa.shared::cluster.u32 remote, %0, %1;\n"
      "mbarrier.arrive.shared::cluster.b64 _, [remote];\n"
      "}\n" ::"r"(bar), "r"(rank)
      : "memory");
}
// The shared::cluster address of shared offset addr in CTA `rank` of this cluster.
static __device__ __forceinline__ uint32_t mapa_shared(uint32_t addr, uint32_t rank) {
  uint32_t r;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(r) : "r"(addr), "r"(rank));
  return r;
}
static __device__ __forceinline__ void st_cluster_v4(uint32_t cluster_addr, float a, float b, float c, float d) {
  asm volatile("st.shared::cluster.v4.f32 [%0], {%1, %2, %3, %4};\n" ::"r"(cluster_addr), "f"(a), "f"(b), "f"(c), "f"(d) : "memory");
}
static __device__ __forceinline__ float4 ld_shared_v4(uint32_t addr) {
  float4 v;
  asm volatile("ld.shared.v4.f32 {%0, %1, %2, %3}, [%4];\n" : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w) : "r"(addr) : "memory");
  return v;
}
// Every thread of the cluster, not necessarily converged (a warp's threads may take different paths to it): arrive
// (release) and wait (acquire).
static __device__ __forceinline__ void cluster_sync_divergent() {
  asm volatile("barrier.cluster.arrive.release;\nbarrier.cluster.wait.acquire;\n" ::: "memory");
}
static __device__ __forceinline__ uint32_t cluster_rank() {
  uint32_t r;
  asm volatile("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(r));
  return r;
}
static __device__ __forceinline__ uint32_t cluster_index() {
  uint32_t r;
  asm volatile("mov.u32 %0, %%clusterid.x;\n" : "=r"(r));
  return r;
}
static __device__ __forceinline__ uint32_t cluster_count() {
  uint32_t r;
  asm volatile("mov.u32 %0, %%nclusterid.x;\n" : "=r"(r));
  return r;
}
// Every thread of every CTA of the cluster: arrive (release) and wait (acquire).
static __device__ __forceinline__ void cluster_sync_all() {
  asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;\n" ::: "memory");
}
// TMA store of the box at (col0, row0) of C's tensor map from shared memory (bulk-group completion).
static __device__ __forceinline__ void tma_store_2d(const CUtensorMap *map, uint32_t src, int col0, int row0) {
  asm volatile("cp.async.bulk.tensor.2d.global.shared::cta.bulk_group [%0, {%1, %2}], [%3];\n" ::"l"(reinterpret_cast<uint64_t>(map)),
               "r"(col0), "r"(row0), "r"(src)
               : "memory");
}
static __device__ __forceinline__ void bulk_commit() { asm volatile("cp.async.bulk.commit_group;\n" ::: "memory"); }
// This thread's committed bulk stores have finished reading shared memory (they may still be writing global).
static __device__ __forceinline__ void bulk_wait_read_all() { asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory"); }
static __device__ __forceinline__ void bulk_wait_all() { asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory"); }
// Generic-proxy writes to shared memory become visible to the async proxy (the TMA store that reads them).
static __device__ __forceinline__ void fence_proxy_async_shared() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
// Barrier over the 128 threads of one consumer warpgroup (ids 1 and 2; 0 is __syncthreads).
static __device__ __forceinline__ void warpgroup_bar(int id) { asm volatile("bar.sync %0, 128;\n" ::"r"(id) : "memory"); }
static __device__ __forceinline__ void st_shared_u32(uint32_t addr, uint32_t v) {
  asm volatile("st.shared.u32 [%0], %1;\n" ::"r"(addr), "r"(v) : "memory");
}
static __device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
static __device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
static __device__ __forceinline__ void wgmma_wait_all() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }
static __device__ __forceinline__ void wgmma_wait_one_pending() { asm volatile("wgmma.wait_group.sync.aligned 1;\n" ::: "memory"); }
// Keep the compiler from moving accumulator reads/writes across the asynchronous wgmma region.
template <int N>
static __device__ __forceinline__ void fence_accumulators(float (&d)[N]) {
#pragma unroll
  for (int i = 0; i < N; i++) asm volatile("" : "+f"(d[i])::"memory");
}
// wgmma shared-memory matrix descriptor: start address >> 4 (bits 0-13), leading byte offset >> 4
// (bits 16-29; not used by swizzled K-major layouts, 1 by convention), stride byte offset >> 4 (bits
// 32-45: 1024 bytes between 8-row groups), base offset 0 (bits 49-51: stages are 1024-aligned), swizzle
// mode 1 = 128B (bits 62-63).
static __device__ __forceinline__ uint64_t smem_desc_sw128(uint32_t smem_addr) {
  return (uint64_t)((smem_addr & 0x3FFFFu) >> 4) | ((uint64_t)1 << 16) | ((uint64_t)(1024 >> 4) << 32) | ((uint64_t)1 << 62);
}

// wgmma m64nNk16 (N = BN: 80, 128, 160, 192, 256): D[64xN] += A[64x16] . B[Nx16]^T, both operands K-major in
// shared memory (descriptors), fp32 accumulators in N / 2 registers per thread. The asm operand lists are
// generated: WG_Rk names accumulator operands 8k .. 8k+7 in the instruction text, WG_ACC8(i) binds d[i .. i+7];
// the two descriptors follow the N / 2 accumulators (operands N / 2 and N / 2 + 1).
#define WG_R0 "%0, %1, %2, %3, %4, %5, %6, %7"
#define WG_R1 ", %8, %9, %10, %11, %12, %13, %14, %15"
#define WG_R2 ", %16, %17, %18, %19, %20, %21, %22, %23"
#define WG_R3 ", %24, %25, %26, %27, %28, %29, %30, %31"
#define WG_R4 ", %32, %33, %34, %35, %36, %37, %38, %39"
#define WG_R5 ", %40, %41, %42, %43, %44, %45, %46, %47"
#define WG_R6 ", %48, %49, %50, %51, %52, %53, %54, %55"
#define WG_R7 ", %56, %57, %58, %59, %60, %61, %62, %63"
#define WG_R8 ", %64, %65, %66, %67, %68, %69, %70, %71"
#define WG_R9 ", %72, %73, %74, %75, %76, %77, %78, %79"
#define WG_R10 ", %80, %81, %82, %83, %84, %85, %86, %87"
#define WG_R11 ", %88, %89, %90, %91, %92, %93, %94, %95"
#define WG_R12 ", %96, %97, %98, %99, %100, %101, %102, %103"
#define WG_R13 ", %104, %105, %106, %107, %108, %109, %110, %111"
#define WG_R14 ", %112, %113, %114, %115, %116, %117, %118, %119"
#define WG_R15 ", %120, %121, %122, %123, %124, %125, %126, %127"
#define WG_ACC8(i) "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), "+f"(d[i + 6]), "+f"(d[i + 7])
#define WG_ACC32(i) WG_ACC8(i), WG_ACC8(i + 8), WG_ACC8(i + 16), WG_ACC8(i + 24)
#define WG_REGS32 WG_R0 WG_R1 WG_R2 WG_R3
#define WG_REGS64 WG_REGS32 WG_R4 WG_R5 WG_R6 WG_R7
#define WG_REGS96 WG_REGS64 WG_R8 WG_R9 WG_R10 WG_R11
// The immediates after the descriptors: scale-d 1 (accumulate), scale-a/b 1, both K-major.
#define WG_DEFINE_TILE_K16(BN, REGS, DESCS, ...)                                                                   \
  template <>                                                                                                     \
  __device__ __forceinline__ void wgmma_tile_k16<BN>(float (&d)[BN / 2], uint64_t desc_a, uint64_t desc_b) {       \
    asm volatile("{\nwgmma.mma_async.sync.aligned.m64n" #BN "k16.f32.bf16.bf16 {" REGS "}, " DESCS ", 1, 1, 1, 0, 0;\n}\n" \
                 : __VA_ARGS__                                                                                     \
                 : "l"(desc_a), "l"(desc_b));                                                                      \
  }
template <int BN>
static __device__ __forceinline__ void wgmma_tile_k16(float (&d)[BN / 2], uint64_t desc_a, uint64_t desc_b);
WG_DEFINE_TILE_K16(16, WG_R0, "%8, %9", WG_ACC8(0))
WG_DEFINE_TILE_K16(80, WG_REGS32 WG_R4, "%40, %41", WG_ACC32(0), WG_ACC8(32))
WG_DEFINE_TILE_K16(128, WG_REGS64, "%64, %65", WG_ACC32(0), WG_ACC32(32))
WG_DEFINE_TILE_K16(160, WG_REGS64 WG_R8 WG_R9, "%80, %81", WG_ACC32(0), WG_ACC32(32), WG_ACC8(64), WG_ACC8(72))
WG_DEFINE_TILE_K16(192, WG_REGS96, "%96, %97", WG_ACC32(0), WG_ACC32(32), WG_ACC32(64))
WG_DEFINE_TILE_K16(256, WG_REGS96 WG_R12 WG_R13 WG_R14 WG_R15, "%128, %129", WG_ACC32(0), WG_ACC32(32), WG_ACC32(64), WG_ACC32(96))

// Two neighbouring outputs of one row: one 4-byte store where the pair is aligned, else element-wise.
static __device__ __forceinline__ void store_pair(__nv_bfloat16 *C, int64_t M, int64_t N, int64_t row, int64_t col,
                                                  float v0, float v1, bool pair_ok) {
  if (row >= M) return;
  __nv_bfloat16 *p = C + row * N + col;
  if (pair_ok && col + 1 < N) {
    *reinterpret_cast<__nv_bfloat162 *>(p) = __floats2bfloat162_rn(v0, v1);
  } else {
    if (col < N) p[0] = __float2bfloat16(v0);
    if (col + 1 < N) p[1] = __float2bfloat16(v1);
  }
}
// Tile index -> (tile row, tile column): groups of WG_GROUP_M tile-rows, walked column by column, rows
// fastest, so consecutive tiles (resident at the same time on neighbouring SMs) share a W tile.
template <int GROUP_M>
static __device__ __forceinline__ void tile_coords(int tile, int tiles_m, int tiles_n, int *tm, int *tn) {
  const int tiles_per_group = GROUP_M * tiles_n;
  const int group = tile / tiles_per_group;
  const int first_m = group * GROUP_M;
  const int rows_in_group = min(GROUP_M, tiles_m - first_m);
  const int local = tile - group * tiles_per_group;
  *tm = first_m + local % rows_in_group;
  *tn = local / rows_in_group;
}

// A consumer warp is done reading a stage (its wgmma group has completed): lane 0 arrives on the stage's
// "empty" barrier in this CTA and, in a cluster, lane 1 on the peer's, in parallel. Plain (CTA-scope)
// arrivals suffice: a later fill of a stage can only be consumed after both producers saw that stage's
// previous phase complete, so no arrival can count toward the wrong phase whatever the order in which the
// two arrivals land. A cluster-scope release here costs a memory fence per k-block (measured: see
// docs/ops/gemm.md, step 6b).
template <int CLUSTER>
static __device__ __forceinline__ void release_stage(uint32_t empty_bar, int rank, int lane) {
  if (lane == 0) mbar_arrive(empty_bar);
  if constexpr (CLUSTER == 2) {
    if (lane == 1) mbar_arrive_in_cta(empty_bar, (uint32_t)(rank ^ 1));
  }
}

#endif  // WG_DEVICE_OK

// CLUSTER = 1: one CTA per tile. CLUSTER = 2 (launched as 2-CTA clusters, gemm_wgmma_mc2): the two CTAs
// of a cluster take vertically adjacent tiles (tile rows 2p and 2p+1, same tile column) and share the W
// tile: each loads its own A tile and one half of the W tile, multicast into both CTAs' ring. A stage of
// either CTA is then written by both producers, so its "empty" barrier counts the consumer warps of both
// CTAs (each consumer warp arrives on its own and on the peer's), and the "full" barrier expects the A
// bytes plus both W halves. Boxes that would lie wholly outside A or W (the second tile row when
// tiles_m is odd, the second W half at the N edge) are not loaded and not expected: both CTAs derive the
// same decision from (tile, M, N); the stale shared memory they leave only feeds outputs that the masked
// store drops.
// TRANS_C 1: the kernel computes the tile of C but writes it to C^T (an [N x M] row-major matrix), with masked
// direct stores: gemm_wgmma_skinny runs y^T = W . x^T this way, W as the 64-row operand and x as one 16-column tile.
template <int BM, int BN, int CLUSTER, int TRANS_C, int B_RES, int KSPLIT = 1, int STAGE_CAP = 16>
__global__ void __launch_bounds__(wg_config<BM, BN, B_RES, KSPLIT, STAGE_CAP>::THREADS, 1)
gemm_wgmma_kernel(const __grid_constant__ CUtensorMap map_a, const __grid_constant__ CUtensorMap map_w,
                  const __grid_constant__ CUtensorMap map_c, __nv_bfloat16 *__restrict__ C, int64_t M, int64_t N, int64_t K,
                  int tiles_m, int tiles_n, int pair_ok, int tma_store) {
#ifdef WG_DEVICE_OK
  using cfg = wg_config<BM, BN, B_RES, KSPLIT, STAGE_CAP>;
  constexpr int STAGES = cfg::STAGES;
  static_assert(!B_RES || CLUSTER == 1, "resident B in unclustered launches");
  static_assert(KSPLIT == 1 || (CLUSTER == 1 && TRANS_C == 1), "k split: skinny launches (transposed direct stores)");
  extern __shared__ __align__(1024) uint8_t smem_raw[];
  // Shared addresses only (TMA, mbarriers and wgmma descriptors all take them); aligned to 1024 here
  // because the swizzle pattern is a function of address bits 7-9.
  const uint32_t base = ((uint32_t)__cvta_generic_to_shared(smem_raw) + 1023u) & ~1023u;
  const uint32_t a_ring = base;                                  // STAGES x [128 rows x 128 B]
  const uint32_t b_ring = base + STAGES * cfg::A_BYTES;          // STAGES x [BN rows x 128 B]
  const uint32_t res = b_ring + STAGES * cfg::B_BYTES;           // B_RES: every k-block's B tile
  const uint32_t epi = res + cfg::RES_BYTES;                     // 2 x EPI_BOXES x [64 rows x 64 B] (C boxes)
  const uint32_t red = epi + cfg::EPI_BYTES;                     // KSPLIT > 1: partial tiles of ranks 1.. (in rank 0)
  const uint32_t bars = red + cfg::RED_BYTES;                    // full[STAGES], empty[STAGES], then the resident B's
  const uint32_t res_bar = bars + 16 * STAGES;
  static_assert(CLUSTER == 1 || (CLUSTER == 2 && BM == 128), "CTA pairs at most, of 128-row tiles");
  constexpr int GROUP = WG_GROUP_M / CLUSTER;  // raster groups of the same height in tile rows
  // Work units: tiles (CLUSTER 1) or vertical tile pairs (CLUSTER 2), walked by CTAs / clusters.
  const int unit_rows = (tiles_m + CLUSTER - 1) / CLUSTER;
  const int total_units = unit_rows * tiles_n;
  int first_unit = blockIdx.x, unit_step = gridDim.x, rank = 0;
  if constexpr (CLUSTER > 1) first_unit = (int)cluster_index(), unit_step = (int)cluster_count(), rank = (int)cluster_rank();
  // k split: a cluster of KSPLIT CTAs per tile (launched one tile per cluster), rank r takes k-blocks [kb_begin, kb_end).
  int k_rank = 0;
  if constexpr (KSPLIT > 1) first_unit = (int)cluster_index(), unit_step = (int)cluster_count(), k_rank = (int)cluster_rank();
  const int k_blocks_total = (int)((K + WG_BK - 1) / WG_BK);
  const int kb_begin = (int)((int64_t)k_rank * k_blocks_total / KSPLIT);
  const int kb_end = (int)((int64_t)(k_rank + 1) * k_blocks_total / KSPLIT);

  if (threadIdx.x == 0) {
    for (int s = 0; s < STAGES; s++) {
      mbar_init(bars + 8 * s, 1);                                       // the producer's arrive.expect_tx
      mbar_init(bars + 8 * (STAGES + s), cfg::CONSUMER_WARPS * CLUSTER);  // one arrival per consumer warp of the cluster
    }
    if constexpr (B_RES) mbar_init(res_bar, 1);
    mbar_init_fence();  // visible to the async (TMA) proxy
  }
  __syncthreads();
  // The peer multicasts into this CTA's ring and arrives on its barriers: both must be initialised first. With a
  // k split, ranks 1.. write into rank 0's shared memory: rank 0 must have started.
  if constexpr (CLUSTER > 1 || KSPLIT > 1) cluster_sync_all();

  const int warpgroup = threadIdx.x / 128;
  if (warpgroup == 0) {
    // ---- producer ----
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(WG_PRODUCER_REGS));
    // KSPLIT: every thread takes part in the cluster barrier that ends the k split (see the consumers), so none of
    // the cluster's CTAs exits while another may still write into its shared memory.
    if (threadIdx.x != 0) {
      if constexpr (KSPLIT > 1) cluster_sync_divergent();
      return;
    }
    int stage = 0;
    uint32_t phase = 0;
    if constexpr (B_RES) {
      // One tile column (the launcher checks): the B tiles of this CTA's k-blocks, once.
      mbar_arrive_expect_tx(res_bar, (uint32_t)((kb_end - kb_begin) * cfg::B_TILE_BYTES));
      for (int kb = kb_begin; kb < kb_end; kb++) tma_load_2d(res + (kb - kb_begin) * cfg::B_TILE_BYTES, &map_w, res_bar, kb * WG_BK, 0);
    }
    for (int unit = first_unit; unit < total_units; unit += unit_step) {
      int um, tn;
      tile_coords<GROUP>(unit, unit_rows, tiles_n, &um, &tn);
      const int tm = um * CLUSTER + rank;
      if constexpr (CLUSTER == 1) {
        for (int kb = kb_begin; kb < kb_end; kb++) {
          const uint32_t full = bars + 8 * stage, empty = bars + 8 * (STAGES + stage);
          mbar_wait(empty, phase ^ 1);  // first pass: the "previous" phase counts as complete
          mbar_arrive_expect_tx(full, cfg::STAGE_BYTES);
          tma_load_2d(a_ring + stage * cfg::A_BYTES, &map_a, full, kb * WG_BK, tm * BM);
          if constexpr (!B_RES) tma_load_2d(b_ring + stage * cfg::B_BYTES, &map_w, full, kb * WG_BK, tn * BN);
          if (++stage == STAGES) stage = 0, phase ^= 1;
        }
      } else {
        constexpr int HALF_ROWS = BN / 2, HALF_BYTES = cfg::B_BYTES / 2;
        const bool a_in = (int64_t)tm * BM < M;               // false only for the odd last tile row
        const bool half1_in = (int64_t)tn * BN + HALF_ROWS < N;  // half 0 always starts inside W
        const uint32_t bytes = (a_in ? cfg::A_BYTES : 0) + HALF_BYTES + (half1_in ? HALF_BYTES : 0);
        const bool my_half_in = rank == 0 || half1_in;
        for (int kb = 0; kb < k_blocks_total; kb++) {
          const uint32_t full = bars + 8 * stage, empty = bars + 8 * (STAGES + stage);
          mbar_wait(empty, phase ^ 1);  // released by the consumers of BOTH CTAs (the peer writes here too)
          mbar_arrive_expect_tx(full, bytes);
          if (a_in) tma_load_2d(a_ring + stage * cfg::A_BYTES, &map_a, full, kb * WG_BK, tm * BM);
          if (my_half_in)
            tma_load_2d_multicast(b_ring + stage * cfg::B_BYTES + rank * HALF_BYTES, &map_w, full, kb * WG_BK,
                                  tn * BN + rank * HALF_ROWS, (uint16_t)0x3);
          if (++stage == STAGES) stage = 0, phase ^= 1;
        }
      }
    }
    if constexpr (CLUSTER > 1) {
      // The peer's consumers arrive on this CTA's "empty" barriers until their last k-block: wait for the
      // release of the last fill of every stage, so this CTA (its shared memory) outlives those arrivals.
      for (int i = 0; i < STAGES; i++) {
        mbar_wait(bars + 8 * (STAGES + stage), phase ^ 1);
        if (++stage == STAGES) stage = 0, phase ^= 1;
      }
    }
    if constexpr (KSPLIT > 1) cluster_sync_divergent();
    return;
  }

  // ---- consumers ----
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(WG_CONSUMER_REGS));
  const int consumer = warpgroup - 1;                  // rows consumer*64 .. +63 of the tile
  const int lane = threadIdx.x % 32, warp_in_group = (threadIdx.x % 128) / 32;
  const int g = lane / 4, q = lane % 4;
  float d[BN / 2];
  int stage = 0;
  uint32_t phase = 0;
  if constexpr (B_RES) mbar_wait(res_bar, 0);
  for (int unit = first_unit; unit < total_units; unit += unit_step) {
    int um, tn;
    tile_coords<GROUP>(unit, unit_rows, tiles_n, &um, &tn);
    const int tm = um * CLUSTER + rank;  // may be tiles_m (odd tiles_m, CLUSTER 2): all its rows are >= M
#pragma unroll
    for (int i = 0; i < BN / 2; i++) d[i] = 0.f;
    fence_accumulators(d);  // the zeros are written before the first wgmma of the tile reads them
    // One wgmma group stays in flight: after issuing k-block kb, wait until only that group is pending,
    // which means k-block kb-1 has finished reading its stage; release that stage. The tensor cores so
    // never idle between k-blocks, at the cost of holding two stages (the producer keeps STAGES-2 ahead).
    int held = -1;  // stage read by the group still in flight
    for (int kb = kb_begin; kb < kb_end; kb++) {
      mbar_wait(bars + 8 * stage, phase);  // "full": the TMA bytes of this stage have landed
      const uint64_t desc_a = smem_desc_sw128(a_ring + stage * cfg::A_BYTES + consumer * 64 * 128);
      const uint64_t desc_b = smem_desc_sw128(B_RES ? res + (kb - kb_begin) * cfg::B_TILE_BYTES : b_ring + stage * cfg::B_BYTES);
      wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < WG_BK / 16; kk++)  // k step of 16 elements = 32 bytes = 2 in descriptor units
        wgmma_tile_k16<BN>(d, desc_a + 2 * kk, desc_b + 2 * kk);
      wgmma_commit();
      wgmma_wait_one_pending();
      if (held >= 0) release_stage<CLUSTER>(bars + 8 * (STAGES + held), rank, lane);  // "empty": this warp is done with it
      held = stage;
      if (++stage == STAGES) stage = 0, phase ^= 1;
    }
    wgmma_wait_all();
    fence_accumulators(d);  // no accumulator read may move above the wait
    if (held >= 0) release_stage<CLUSTER>(bars + 8 * (STAGES + held), rank, lane);  // none held: a k split's empty range
    if constexpr (KSPLIT > 1) {
      // Partial tiles meet in rank 0: thread t of rank r > 0 writes its BN / 2 accumulators to slot r - 1, entry t, of
      // rank 0's buffer (whole 16-byte vectors, consecutive per thread); a cluster barrier (release / acquire) over
      // every thread of the cluster follows, after which rank 0 adds the slots in rank order (the sum does not depend
      // on timing) and the other ranks exit. One tile per cluster: the buffer and the barrier are used once, and no
      // CTA leaves while another may still write into its shared memory.
      const int t = threadIdx.x - 128;  // 0 .. CONSUMERS * 128 - 1
      if (k_rank > 0) {
        const uint32_t remote = mapa_shared(red + (uint32_t)(((k_rank - 1) * cfg::CONSUMERS * 128 + t) * (BN / 2) * 4), 0);
#pragma unroll
        for (int i = 0; i < BN / 2; i += 4) st_cluster_v4(remote + 4 * i, d[i], d[i + 1], d[i + 2], d[i + 3]);
      }
      cluster_sync_divergent();
      if (k_rank > 0) continue;  // the next unit (none: one tile per cluster)
#pragma unroll
      for (int r = 1; r < KSPLIT; r++) {
        const uint32_t slot = red + (uint32_t)(((r - 1) * cfg::CONSUMERS * 128 + t) * (BN / 2) * 4);
#pragma unroll
        for (int i = 0; i < BN / 2; i += 4) {
          float4 v = ld_shared_v4(slot + 4 * i);
          d[i] += v.x, d[i + 1] += v.y, d[i + 2] += v.z, d[i + 3] += v.w;
        }
      }
    }
    // Accumulator layout (m64nN, fp32): warp w of the group holds rows 16w..16w+15; d[4j+0..1] = row g,
    // columns 8j+2q, +1; d[4j+2..3] = row g+8, same columns.
    if constexpr (TRANS_C == 1) {
      // C^T[col][row] = C[row][col]: rows of the tile are columns of the output (ld M); bf16 stores of 2 bytes, the
      // output being small (M <= 16 rows of it).
      const int64_t row = (int64_t)tm * BM + consumer * 64 + warp_in_group * 16 + g;
#pragma unroll
      for (int j = 0; j < BN / 8; j++) {
        const int64_t col = (int64_t)tn * BN + 8 * j + 2 * q;
#pragma unroll
        for (int e = 0; e < 4; e++) {
          const int64_t r = row + (e >> 1) * 8, c = col + (e & 1);
          if (r < M && c < N) C[c * M + r] = __float2bfloat16(d[4 * j + e]);
        }
      }
    } else if (tma_store) {
      // Through shared memory and TMA stores: the registers go to this warpgroup's buffer (4-byte shared
      // stores, conflict-free), one thread stores whole boxes, and the warpgroup goes on to the next tile
      // while the bulk stores write global memory. Direct stores from the fragment layout (below) write 8
      // rows x 16 bytes per instruction, and all CTAs finish their tiles together: the epilogue took 15-25%
      // of the kernel (docs/ops/gemm.md, step 7).
      // Box layout (TMA swizzle, see wg_config): 64B swizzle: row r is 64 bytes, its chunk c at c ^ ((r >> 1) & 3);
      // 32B swizzle (BN = 80): row r is 32 bytes, chunk c at c ^ ((r >> 2) & 1). A warp's store covers 8 rows g
      // at one chunk; the row offset and the swizzled chunk spread them over 32 different banks either way.
      const uint32_t buf = epi + consumer * (cfg::EPI_BOXES * cfg::BOX_BYTES);
      const int wg_thread = threadIdx.x % 128;
      const int r0 = warp_in_group * 16 + g, r1 = r0 + 8;  // rows within the warpgroup's 64
      // r1 = r0 + 8 has the same swizzle: 8 rows move the pattern's index by 4 (64B) or 2 (32B), a multiple of CHUNKS.
      const uint32_t row_off0 = r0 * cfg::BOX_ROW_BYTES, row_off1 = r1 * cfg::BOX_ROW_BYTES;
      const uint32_t sw = (uint32_t)((r0 * cfg::BOX_ROW_BYTES / 128) % cfg::CHUNKS);
#pragma unroll
      for (int round = 0; round < cfg::EPI_ROUNDS; round++) {
        // The buffer is free once this warpgroup's previous bulk stores have read it (the previous round or tile).
        if (wg_thread == 0) bulk_wait_read_all();
        warpgroup_bar(1 + consumer);
#pragma unroll
        for (int jj = 0; jj < cfg::EPI_BOXES * cfg::CHUNKS; jj++) {
          const int j = round * (cfg::EPI_BOXES * cfg::CHUNKS) + jj;  // 8-column group within the tile
          const uint32_t box = buf + (jj / cfg::CHUNKS) * cfg::BOX_BYTES;
          const uint32_t chunk = ((uint32_t)(jj % cfg::CHUNKS) ^ sw) * 16 + 4 * q;
          __nv_bfloat162 v0 = __floats2bfloat162_rn(d[4 * j + 0], d[4 * j + 1]);
          __nv_bfloat162 v1 = __floats2bfloat162_rn(d[4 * j + 2], d[4 * j + 3]);
          st_shared_u32(box + row_off0 + chunk, *reinterpret_cast<uint32_t *>(&v0));
          st_shared_u32(box + row_off1 + chunk, *reinterpret_cast<uint32_t *>(&v1));
        }
        fence_proxy_async_shared();  // each writer's stores, before the barrier that hands them to the TMA
        warpgroup_bar(1 + consumer);
        if (wg_thread == 0) {
          const int64_t row0 = (int64_t)tm * BM + consumer * 64;
#pragma unroll
          for (int b = 0; b < cfg::EPI_BOXES; b++) {
            const int64_t col0 = (int64_t)tn * BN + (round * cfg::EPI_BOXES + b) * cfg::BOX_COLS;
            // TMA clips boxes at the edges of C; boxes wholly outside (odd tile rows of a cluster, N tails) are skipped.
            if (row0 < M && col0 < N) tma_store_2d(&map_c, buf + b * cfg::BOX_BYTES, (int)col0, (int)row0);
          }
          bulk_commit();
        }
      }
    } else {
      // Direct stores, masked at the M/N edges: for C rows that TMA cannot describe (N % 8 != 0 or C not
      // 16-byte aligned).
      const int64_t row = (int64_t)tm * BM + consumer * 64 + warp_in_group * 16 + g;
      const int64_t col0 = (int64_t)tn * BN + 2 * q;
#pragma unroll
      for (int j = 0; j < BN / 8; j++) {
        store_pair(C, M, N, row, col0 + 8 * j, d[4 * j + 0], d[4 * j + 1], pair_ok);
        store_pair(C, M, N, row + 8, col0 + 8 * j, d[4 * j + 2], d[4 * j + 3], pair_ok);
      }
    }
  }
  // The bulk stores read this CTA's shared memory: it must outlive them.
  if (tma_store && threadIdx.x % 128 == 0) bulk_wait_all();
#else
  __trap();  // built without sm_90a: the launcher declines before launching (see gemm_optimized_supports)
#endif
}

// ---- host ----
static PFN_cuTensorMapEncodeTiled_v12000 encode_tiled;

static int get_encoder(klab_err *err) {
  if (encode_tiled) return 0;
  void *fn = NULL;
  cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
  KLAB_CUDA(err, cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &found),
            "gemm optimized: driver entry point");
  if (found != cudaDriverEntryPointSuccess || !fn)
    return klab_fail(err, "gemm optimized: the driver has no cuTensorMapEncodeTiled (query result %d); TMA needs CUDA 12+ drivers", (int)found);
  encode_tiled = (PFN_cuTensorMapEncodeTiled_v12000)fn;
  return 0;
}

// A row-major [rows, cols] bf16 matrix as a 2-D tensor map with [box_rows x box_cols] boxes: A and W are
// loaded in boxes of 64 columns (128 bytes, 128B swizzle, zero fill outside the matrix); C is stored in
// boxes of 32 columns (64 bytes, 64B swizzle; TMA clips the parts outside).
static int make_map(CUtensorMap *map, const void *ptr, int64_t rows, int64_t cols, int box_rows, int box_cols,
                    CUtensorMapSwizzle swizzle, const char *name, klab_err *err) {
  const cuuint64_t dims[2] = {(cuuint64_t)cols, (cuuint64_t)rows};
  const cuuint64_t strides[1] = {(cuuint64_t)cols * 2};  // bytes between rows (dimension 1)
  const cuuint32_t box[2] = {(cuuint32_t)box_cols, (cuuint32_t)box_rows};
  const cuuint32_t element_strides[2] = {1, 1};
  CUresult rc = encode_tiled(map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, const_cast<void *>(ptr), dims, strides, box,
                             element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle,
                             CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (rc != CUDA_SUCCESS)
    return klab_fail(err, "gemm optimized: cuTensorMapEncodeTiled for %s [%lld x %lld], box %d x %d failed (CUresult %d)", name,
                     (long long)rows, (long long)cols, box_rows, box_cols, (int)rc);
  return 0;
}

// Tile width: the one with the smaller estimated time = (tiles per CTA, i.e. waves) x (cost of one tile), over
// the widths 256, 192, 160, 128, 80. A tile's cost is taken as proportional to BN + 28 (MMA work grows with BN;
// the A tile, barrier waits and issue overhead do not), so a 128-wide tile costs 0.55 of a 256-wide one. 160 and 192 exist for the wave
// quantisation of the Qwen3 shapes: N = 2560 at M = 2048 is 160 tiles of 256 (2 waves, the second 21%
// full) but 256 tiles of 160 (2 full waves); N = 6144 at M = 512 is 96 tiles of 256 (36 SMs idle) but
// 128 tiles of 192 (one full wave). 80 is for N = 2560 at M = 512 (Qwen3-4B o, down): 80 tiles of 128 leave
// 52 SMs idle, 128 tiles of 80 fill 128 (cuBLAS runs 128 CTAs of 128 x 80 there). A narrower tile moves more
// bytes per flop, so it must win by > 3%.
static double waves_cost(int64_t M, int64_t N, int sms, int bn) {
  const int64_t tiles = ((M + 127) / 128) * ((N + bn - 1) / bn);
  return (double)((tiles + sms - 1) / sms) * ((double)bn + 28.0) / (256.0 + 28.0);
}
static int pick_bn(int64_t M, int64_t N, int sms) {
  static const int narrower[] = {192, 160, 128, 80};
  int best = 256;
  double best_cost = waves_cost(M, N, sms, 256);
  for (int i = 0; i < 4; i++) {
    const double cost = waves_cost(M, N, sms, narrower[i]);
    if (cost < 0.97 * best_cost) best = narrower[i], best_cost = cost;
  }
  return best;
}
// The tile of `optimized`: 64 x 160 where the 128-row plan takes width 80 and M <= 512, else 128 x pick_bn().
// 64 x 160 has the same outputs per tile as 128 x 80 but one consumer warpgroup issuing m64n160k16 (80
// tensor-core clocks per instruction instead of 40) and 22% fewer shared-memory reads per k-block (no W tile
// read by two warpgroups): Qwen3-4B o at M = 512 ran 17.8-19.4 us against 19.3-21.0 for 128 x 80, and it was
// faster on 30 of the 33 shapes with M <= 1024 where pick_bn() takes 80 (results/gemm-small-m-tiles; docs/ops/
// gemm.md, step 10). The M <= 512 bound is measured, not modelled: at M = N = 1024 it was 0.71-0.90x of 128 x 80.
static void pick_tile(int64_t M, int64_t N, int sms, int *bm, int *bn) {
  *bn = pick_bn(M, N, sms), *bm = 128;
  if (*bn == 80 && M <= 512) *bm = 64, *bn = 160;
}

template <int BM, int BN, int TRANS_C = 0, int B_RES = 0>
static int launch_bn(const char *variant, const CUtensorMap *map_a, const CUtensorMap *map_w, const CUtensorMap *map_c, uint16_t *C,
                     int64_t M, int64_t N, int64_t K, int sms, int pair_ok, int tma_store, cudaStream_t stream, klab_err *err) {
  using cfg = wg_config<BM, BN, B_RES>;
  const int tiles_m = (int)((M + BM - 1) / BM), tiles_n = (int)((N + BN - 1) / BN);
  const int64_t tiles = (int64_t)tiles_m * tiles_n;
  if (B_RES && (tiles_n != 1 || (K + WG_BK - 1) / WG_BK > cfg::RES_KBLOCKS))
    return klab_fail(err, "gemm %s M=%lld N=%lld K=%lld: a resident B needs N <= %d and K <= %d", variant, (long long)M, (long long)N,
                     (long long)K, BN, cfg::RES_KBLOCKS * WG_BK);
  const int grid = (int)(tiles < sms ? tiles : sms);
  char ctx[160];
  snprintf(ctx, sizeof ctx, "gemm %s (wgmma, %dx%d tiles) M=%lld N=%lld K=%lld", variant, BM, BN, (long long)M, (long long)N,
           (long long)K);
  // Set on every launch (a cheap host call) so a device switch or a fresh context cannot miss it.
  KLAB_CUDA(err, cudaFuncSetAttribute(gemm_wgmma_kernel<BM, BN, 1, TRANS_C, B_RES>, cudaFuncAttributeMaxDynamicSharedMemorySize, cfg::SMEM_BYTES), ctx);
  gemm_wgmma_kernel<BM, BN, 1, TRANS_C, B_RES><<<grid, cfg::THREADS, cfg::SMEM_BYTES, stream>>>(*map_a, *map_w, *map_c, (__nv_bfloat16 *)C, M, N, K,
                                                                               tiles_m, tiles_n, pair_ok, tma_store);
  KLAB_CHECK_LAUNCH(err, ctx);
  return 0;
}

// 2-CTA clusters: as many clusters as can be resident at once (2 SMs of one GPC each; fewer than SMs / 2
// where a GPC has an odd number of free SMs), each walking vertical tile pairs.
template <int BN>
static int launch_bn_mc2(const char *variant, const CUtensorMap *map_a, const CUtensorMap *map_w, const CUtensorMap *map_c,
                         uint16_t *C, int64_t M, int64_t N, int64_t K, int sms, int pair_ok, int tma_store, cudaStream_t stream,
                         klab_err *err) {
  using cfg = wg_config<128, BN>;
  const int tiles_m = (int)((M + 127) / 128), tiles_n = (int)((N + BN - 1) / BN);
  const int64_t pairs = (int64_t)((tiles_m + 1) / 2) * tiles_n;
  char ctx[160];
  snprintf(ctx, sizeof ctx, "gemm %s (wgmma, 2-CTA clusters, BN=%d) M=%lld N=%lld K=%lld", variant, BN, (long long)M, (long long)N,
           (long long)K);
  KLAB_CUDA(err, cudaFuncSetAttribute(gemm_wgmma_kernel<128, BN, 2, 0, 0>, cudaFuncAttributeMaxDynamicSharedMemorySize, cfg::SMEM_BYTES), ctx);
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeClusterDimension;
  attr[0].val.clusterDim.x = 2, attr[0].val.clusterDim.y = 1, attr[0].val.clusterDim.z = 1;
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3((unsigned)(sms / 2 * 2 > 0 ? sms / 2 * 2 : 2), 1, 1);
  config.blockDim = dim3(cfg::THREADS, 1, 1);
  config.dynamicSmemBytes = cfg::SMEM_BYTES;
  config.stream = stream;
  config.attrs = attr;
  config.numAttrs = 1;
  int resident = 0;
  KLAB_CUDA(err, cudaOccupancyMaxActiveClusters(&resident, gemm_wgmma_kernel<128, BN, 2, 0, 0>, &config), ctx);
  if (resident < 1) return klab_fail(err, "%s: no 2-CTA cluster of this kernel fits on the device", ctx);
  const int clusters = (int)(pairs < resident ? pairs : resident);
  config.gridDim = dim3((unsigned)(2 * clusters), 1, 1);
  KLAB_CUDA(err, cudaLaunchKernelEx(&config, gemm_wgmma_kernel<128, BN, 2, 0, 0>, *map_a, *map_w, *map_c, (__nv_bfloat16 *)C, M, N, K, tiles_m,
                                    tiles_n, pair_ok, tma_store),
            ctx);
  KLAB_CHECK_LAUNCH(err, ctx);
  return 0;
}

extern "C" int gemm_optimized_supports(int64_t M, int64_t N, int64_t K, char *why, size_t why_len) {
  if (M < 1 || N < 1 || K < 1) return snprintf(why, why_len, "M, N, K must be >= 1"), 0;
  if (K % 8 != 0)
    return snprintf(why, why_len, "K=%lld is not a multiple of 8 (TMA needs 16-byte row strides)", (long long)K), 0;
  // Tile counts are int; TMA coordinates are int32 (rows up to M or N, k up to K).
  // (The most tiles: 64-row tiles of the narrowest width, 80.)
  if (M > 2147483647LL - 128 || N > 2147483647LL - 256 || K > 2147483647LL - WG_BK ||
      ((M + 63) / 64) * ((N + 79) / 80) > 2147483647LL)
    return snprintf(why, why_len, "M=%lld N=%lld K=%lld: too large for int32 tile indices", (long long)M, (long long)N, (long long)K), 0;
  int dev = 0, major = 0, minor = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess)
    return snprintf(why, why_len, "cannot query the device's compute capability"), 0;
  if (major != 9 || minor != 0)
    return snprintf(why, why_len, "wgmma/TMA kernel is built for sm_90a; this device is sm_%d%d", major, minor), 0;
  return 1;
}

// Checks shared by every wgmma launcher; fills *sms.
static int wgmma_prepare(const char *variant, const uint16_t *A, const uint16_t *W, uint16_t *C, int64_t M, int64_t N, int64_t K,
                         int *sms, klab_err *err) {
  char why[200];
  if (!gemm_optimized_supports(M, N, K, why, sizeof why))
    return klab_fail(err, "gemm %s M=%lld N=%lld K=%lld: unsupported: %s", variant, (long long)M, (long long)N, (long long)K, why);
  if (!A || !W || !C || (uintptr_t)A % 16 != 0 || (uintptr_t)W % 16 != 0)
    return klab_fail(err, "gemm %s M=%lld N=%lld K=%lld: A and W must be non-NULL and 16-byte aligned for TMA (A=%p W=%p C=%p)",
                     variant, (long long)M, (long long)N, (long long)K, (const void *)A, (const void *)W, (void *)C);
  if (get_encoder(err)) return -1;
  int dev = 0;
  KLAB_CUDA(err, cudaGetDevice(&dev), variant);
  KLAB_CUDA(err, cudaDeviceGetAttribute(sms, cudaDevAttrMultiProcessorCount, dev), variant);
  return 0;
}

// Builds the tensor maps (per launch on the host, a few microseconds, passed by value) and launches the
// kernel of bm x bn tiles (bm 128: width 80, 128, 160, 192 or 256; bm 64: width 160).
// cluster 2: 2-CTA clusters sharing the W tile (each CTA loads half of it, hence boxes of bn / 2 rows).
static int wgmma_launch(const char *variant, const uint16_t *A, const uint16_t *W, uint16_t *C, int64_t M, int64_t N, int64_t K,
                        int bm, int bn, int cluster, int sms, cudaStream_t stream, klab_err *err) {
  CUtensorMap map_a, map_w, map_c;
  if (make_map(&map_a, A, M, K, bm, WG_BK, CU_TENSOR_MAP_SWIZZLE_128B, "A", err) ||
      make_map(&map_w, W, N, K, cluster == 2 ? bn / 2 : bn, WG_BK, CU_TENSOR_MAP_SWIZZLE_128B, "W", err))
    return -1;
  const int pair_ok = N % 2 == 0 && (uintptr_t)C % 4 == 0;
  // TMA stores need 16-byte row strides and a 16-byte aligned C; other shapes keep the direct stores (the
  // kernel ignores map_c then, so it is left zeroed).
  const int tma_store = N % 8 == 0 && (uintptr_t)C % 16 == 0;
  memset(&map_c, 0, sizeof map_c);
  // The C boxes of wg_config: 32 columns in 64B swizzle, or 16 in 32B swizzle for BN = 80.
  const int box_cols = wg_box_cols(bn);
  if (tma_store && make_map(&map_c, C, M, N, 64, box_cols, box_cols == 32 ? CU_TENSOR_MAP_SWIZZLE_64B : CU_TENSOR_MAP_SWIZZLE_32B,
                            "C", err))
    return -1;
  if (bm == 64 && cluster == 1) {
    if (bn == 160) return launch_bn<64, 160>(variant, &map_a, &map_w, &map_c, C, M, N, K, sms, pair_ok, tma_store, stream, err);
  } else if (bm != 128) {
    // reported below
  } else if (cluster == 2) {
    switch (bn) {
      case 256: return launch_bn_mc2<256>(variant, &map_a, &map_w, &map_c, C, M, N, K, sms, pair_ok, tma_store, stream, err);
      case 192: return launch_bn_mc2<192>(variant, &map_a, &map_w, &map_c, C, M, N, K, sms, pair_ok, tma_store, stream, err);
      case 160: return launch_bn_mc2<160>(variant, &map_a, &map_w, &map_c, C, M, N, K, sms, pair_ok, tma_store, stream, err);
      case 128: return launch_bn_mc2<128>(variant, &map_a, &map_w, &map_c, C, M, N, K, sms, pair_ok, tma_store, stream, err);
      case 80: return launch_bn_mc2<80>(variant, &map_a, &map_w, &map_c, C, M, N, K, sms, pair_ok, tma_store, stream, err);
      default: break;  // reported below
    }
  } else if (cluster == 1) {
    switch (bn) {
      case 256: return launch_bn<128, 256>(variant, &map_a, &map_w, &map_c, C, M, N, K, sms, pair_ok, tma_store, stream, err);
      case 192: return launch_bn<128, 192>(variant, &map_a, &map_w, &map_c, C, M, N, K, sms, pair_ok, tma_store, stream, err);
      case 160: return launch_bn<128, 160>(variant, &map_a, &map_w, &map_c, C, M, N, K, sms, pair_ok, tma_store, stream, err);
      case 128: return launch_bn<128, 128>(variant, &map_a, &map_w, &map_c, C, M, N, K, sms, pair_ok, tma_store, stream, err);
      case 80: return launch_bn<128, 80>(variant, &map_a, &map_w, &map_c, C, M, N, K, sms, pair_ok, tma_store, stream, err);
      default: break;  // reported below
    }
  }
  return klab_fail(err,
                   "gemm %s M=%lld N=%lld K=%lld: no %dx%d tiles in %d-CTA clusters (there are 128 x 80, 128, 160, 192, 256 "
                   "in clusters of 1 or 2, and 64 x 160 unclustered)",
                   variant, (long long)M, (long long)N, (long long)K, bm, bn, cluster);
}

extern "C" int gemm_optimized(const uint16_t *A, const uint16_t *W, uint16_t *C, int64_t M, int64_t N, int64_t K,
                              void *workspace, size_t workspace_bytes, cudaStream_t stream, klab_err *err) {
  (void)workspace, (void)workspace_bytes; /* needs none (the parameters keep one signature for all gemm_*) */
  int sms = 0;
  if (wgmma_prepare("optimized", A, W, C, M, N, K, &sms, err)) return -1;
  int bm = 128, bn = 256;
  pick_tile(M, N, sms, &bm, &bn);
  return wgmma_launch("optimized", A, W, C, M, N, K, bm, bn, 1, sms, stream, err);
}

extern "C" int gemm_wgmma_tile(const uint16_t *A, const uint16_t *W, uint16_t *C, int64_t M, int64_t N, int64_t K, int tile_m,
                               int tile_n, void *workspace, size_t workspace_bytes, cudaStream_t stream, klab_err *err) {
  (void)workspace, (void)workspace_bytes;
  int sms = 0;
  if (wgmma_prepare("wgmma_tile", A, W, C, M, N, K, &sms, err)) return -1;
  return wgmma_launch("wgmma_tile", A, W, C, M, N, K, tile_m, tile_n, 1, sms, stream, err);
}

// Skinny launches (roles swapped, 64 x 16 tiles, C stored transposed): one CTA per tile, persistent over the
// SMs, or (KSPLIT > 1) KSPLIT-CTA clusters per tile splitting its k-blocks, launched as tiles x KSPLIT CTAs, a
// tile per cluster (the partial-tile buffer is used once). At most STAGE_CAP ring stages.
template <int B_RES, int KSPLIT, int STAGE_CAP>
static int launch_skinny(const CUtensorMap *map_w_rows, const CUtensorMap *map_a_rows, uint16_t *C, int64_t rows, int64_t cols,
                         int64_t K, int sms, cudaStream_t stream, klab_err *err) {
  using cfg = wg_config<KLAB_GEMM_SKINNY_TILE_ROWS, 16, B_RES, KSPLIT, STAGE_CAP>;
  const int tiles_m = (int)((rows + KLAB_GEMM_SKINNY_TILE_ROWS - 1) / KLAB_GEMM_SKINNY_TILE_ROWS), k_blocks = (int)((K + WG_BK - 1) / WG_BK);
  char ctx[200];
  snprintf(ctx, sizeof ctx, "gemm wgmma_skinny (64x16 tiles, x %s, k split %d, %d stages) M=%lld N=%lld K=%lld",
           B_RES ? "resident" : "streamed", KSPLIT, cfg::STAGES, (long long)cols, (long long)rows, (long long)K);
  if (B_RES && (k_blocks + KSPLIT - 1) / KSPLIT > cfg::RES_KBLOCKS)
    return klab_fail(err, "%s: a resident x needs K <= %d per CTA", ctx, cfg::RES_KBLOCKS * WG_BK);
  auto kernel = gemm_wgmma_kernel<KLAB_GEMM_SKINNY_TILE_ROWS, 16, 1, 1, B_RES, KSPLIT, STAGE_CAP>;
  KLAB_CUDA(err, cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, cfg::SMEM_BYTES), ctx);
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeClusterDimension;
  attr[0].val.clusterDim.x = KSPLIT, attr[0].val.clusterDim.y = 1, attr[0].val.clusterDim.z = 1;
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3((unsigned)(KSPLIT > 1 ? (int64_t)tiles_m * KSPLIT : (tiles_m < sms ? tiles_m : sms)), 1, 1);
  config.blockDim = dim3(cfg::THREADS, 1, 1);
  config.dynamicSmemBytes = cfg::SMEM_BYTES;
  config.stream = stream;
  config.attrs = attr;
  config.numAttrs = KSPLIT > 1 ? 1 : 0;  // unclustered without a k split
  KLAB_CUDA(err, cudaLaunchKernelEx(&config, kernel, *map_w_rows, *map_a_rows, *map_a_rows, (__nv_bfloat16 *)C, rows, cols, K, tiles_m, 1, 0, 0),
            ctx);
  KLAB_CHECK_LAUNCH(err, ctx);
  return 0;
}

extern "C" int gemm_wgmma_skinny(const uint16_t *A, const uint16_t *W, uint16_t *C, int64_t M, int64_t N, int64_t K,
                                 int resident, int k_split, int max_stages, cudaStream_t stream, klab_err *err) {
  if (M < 1 || M > 16)
    return klab_fail(err, "gemm wgmma_skinny M=%lld N=%lld K=%lld: M must be 1..16 (A is one 16-row wgmma operand)", (long long)M,
                     (long long)N, (long long)K);
  int sms = 0;
  // Roles swapped: the kernel's "A" is W (N rows, 64-row tiles), its "W" is A (M rows in one 16-row box, TMA
  // zero-fills rows M..15), its C is [N x M], stored transposed into C [M x N].
  if (wgmma_prepare("wgmma_skinny", W, A, C, N, M, K, &sms, err)) return -1;
  CUtensorMap map_w_rows, map_a_rows;
  if (make_map(&map_w_rows, W, N, K, 64, WG_BK, CU_TENSOR_MAP_SWIZZLE_128B, "W", err) ||
      make_map(&map_a_rows, A, M, K, 16, WG_BK, CU_TENSOR_MAP_SWIZZLE_128B, "A", err))
    return -1;
  static_assert(wg_config<64, 16, 1>::RES_KBLOCKS * WG_BK == KLAB_GEMM_SKINNY_RESIDENT_MAX_K, "gemm.h states the resident limit");
  // The configurations gemv uses (gemm.h); each is one more instantiation of the kernel.
  if (resident == 1 && k_split == 1 && max_stages == 16) return launch_skinny<1, 1, 16>(&map_w_rows, &map_a_rows, C, N, M, K, sms, stream, err);
  if (resident == 0 && k_split == 1 && max_stages == 16) return launch_skinny<0, 1, 16>(&map_w_rows, &map_a_rows, C, N, M, K, sms, stream, err);
  if (resident == 0 && k_split == 1 && max_stages == 10) return launch_skinny<0, 1, 10>(&map_w_rows, &map_a_rows, C, N, M, K, sms, stream, err);
  if (resident == 0 && k_split == 2 && max_stages == 16) return launch_skinny<0, 2, 16>(&map_w_rows, &map_a_rows, C, N, M, K, sms, stream, err);
  return klab_fail(err,
                   "gemm wgmma_skinny M=%lld N=%lld K=%lld: no configuration with x %s, k split %d, at most %d stages (there are: "
                   "resident x; streamed x with 16 or 10 stages; streamed x split over 2 CTAs with 16)",
                   (long long)M, (long long)N, (long long)K, resident ? "resident" : "streamed", k_split, max_stages);
}

extern "C" int gemm_wgmma_mc2(const uint16_t *A, const uint16_t *W, uint16_t *C, int64_t M, int64_t N, int64_t K,
                              void *workspace, size_t workspace_bytes, cudaStream_t stream, klab_err *err) {
  (void)workspace, (void)workspace_bytes;
  int sms = 0;
  if (wgmma_prepare("wgmma_mc2", A, W, C, M, N, K, &sms, err)) return -1;
  return wgmma_launch("wgmma_mc2", A, W, C, M, N, K, 128, pick_bn(M, N, sms), 2, sms, stream, err);
}

