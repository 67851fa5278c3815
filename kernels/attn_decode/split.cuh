// attn_decode split-K building blocks, shared by optimized.cu (chunks merged through global memory by the
// last block to arrive) and cluster.cu (chunks merged through distributed shared memory).
//
// A block owns one KV head, a tile of up to GT (<= 8) of its query heads (the GQA group) and one chunk of
// positions; every K and V row is loaded ONCE for all the query heads sharing it.
// - Each of the block's WARPS warps walks 16-position tiles of the chunk (tiles warp, warp + WARPS, ...).
//   All K and V loads of a tile are 16-byte streaming loads (__ldcs: read once) issued together. With
//   PREFETCH the next tile's loads are issued as soon as the current tile's K has been consumed by the
//   score mma, so a warp always has a tile in flight while it does the softmax and P.V of the previous one
//   (the V of the current tile and the K and V of the next live at once: 96 registers at D = 128).
// - Scores on tensor cores: mma.sync m16n8k16 (bf16 in, fp32 accumulate) with the tile's 16 K rows as A and
//   the tile's query heads as the 8 columns of B (columns past the group are zero). A dot product does not
//   care about the order of k, so k is permuted inside each 32-wide chunk: lane (g, quad) loads
//   K[row g | g+8][32c + 8quad .. +7] and q[head g][same] as single 16-byte vectors (A and B use the same
//   k -> dim map).
// - Online softmax per warp in the log2 domain (scores pre-scaled by log2(e)/sqrt(D)); per-tile max via
//   shuffles, probabilities to shared memory for the P.V lanes, one rescale of the accumulators per tile.
// - P.V on CUDA cores in fp32 (bf16 probabilities would cost ~2^-9 of rms(out) per element).
// - The warps' (m, l, acc) meet in shared memory; block_combine() gives the block's (m, l, o) for one
//   (head, 4 dims) item with the log-sum-exp rule.
// Positions past the chunk (and past ctx) are never loaded: zeros stand in and their scores are -inf, so
// whatever the cache holds there (garbage, NaN) cannot reach the result.
#ifndef KLAB_KERNELS_ATTN_DECODE_SPLIT_CUH
#define KLAB_KERNELS_ATTN_DECODE_SPLIT_CUH
#include <cuda_bf16.h>
#include <math.h>
#include <stdint.h>

#define ATTN_TILE 16  // positions per warp step: the mma's M
#define ATTN_LOG2E 1.4426950408889634

// ---- PTX wrappers ----
// c += A(16x16, row) . B(16x8, col); bf16 inputs, fp32 accumulators.
static __device__ __forceinline__ void mma_bf16_16816(float c[4], unsigned a0, unsigned a1, unsigned a2, unsigned a3,
                                                      unsigned b0, unsigned b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}
// ---- end of PTX wrappers ----

// The split of ctx into chunks of whole granules (granule = WARPS * 16: every warp gets a tile), shared by
// the host (grid size) and the device (a device ctx): chunk = ceil(ceil(ctx / nslots) / granule) * granule,
// active = ceil(ctx / chunk) <= nslots slots hold positions. Calling it again with nslots = active gives the
// same chunk (ctx <= active * chunk), so a host-ctx launch can size its grid to exactly `active` blocks.
// 32-bit unsigned is enough: ctx <= 2^30 (KLAB_ATTN_DECODE_MAX_CTX), nslots <= 64, granule <= 256.
static __host__ __device__ __forceinline__ int attn_split_chunk(int ctx, int nslots, int granule) {
  const unsigned per_slot = ((unsigned)ctx + (unsigned)nslots - 1u) / (unsigned)nslots;
  return (int)((per_slot + (unsigned)granule - 1u) / (unsigned)granule * (unsigned)granule);
}
static __host__ __device__ __forceinline__ int attn_split_active(int ctx, int chunk) {
  return (int)(((unsigned)ctx + (unsigned)chunk - 1u) / (unsigned)chunk);
}

// Shared memory of one block: the warps' tile probabilities and, at the end, their (m, l, acc).
template <int D, int GT, int WARPS>
struct __align__(16) attn_block_smem {
  float warp_acc[WARPS][GT][D];  // first member, 16-byte aligned: block_combine reads it as float4
  float p[WARPS][ATTN_TILE][8];  // probabilities of the current tile, [position][head of the mma's 8]
  float alpha[WARPS][8];         // the tile's rescale of the accumulators, per head
  float warp_m[WARPS][8], warp_l[WARPS][8];
};

static __device__ __forceinline__ void unpack8(const uint4 &v, float f[8]) {
  const __nv_bfloat162 *h = reinterpret_cast<const __nv_bfloat162 *>(&v);
#pragma unroll
  for (int i = 0; i < 4; i++) {
    float2 p = __bfloat1622float2(h[i]);
    f[2 * i] = p.x, f[2 * i + 1] = p.y;
  }
}

// K rows tile_start + g and + g + 8 of this lane's quad (vectors 4c + quad, c < D/32); rows at or past
// chunk_end are zeros and are not loaded.
template <int D>
static __device__ __forceinline__ void load_k_tile(const uint4 *k_rows, int tile_start, int chunk_end, int g, int quad,
                                                   uint4 k_a[D / 32], uint4 k_b[D / 32]) {
  constexpr int D8 = D / 8;
  const uint4 zero = make_uint4(0u, 0u, 0u, 0u);
  const int pos_a = tile_start + g, pos_b = tile_start + g + 8;
  const bool ok_a = pos_a < chunk_end, ok_b = pos_b < chunk_end;
#pragma unroll
  for (int c = 0; c < D / 32; c++) {
    k_a[c] = ok_a ? __ldcs(k_rows + (int64_t)pos_a * D8 + 4 * c + quad) : zero;
    k_b[c] = ok_b ? __ldcs(k_rows + (int64_t)pos_b * D8 + 4 * c + quad) : zero;
  }
}

// V rows tile_start + v_row + RPS * i (RPS = 32 / (D/8) rows per warp step), vector v_col of each.
template <int D>
static __device__ __forceinline__ void load_v_tile(const uint4 *v_rows, int tile_start, int chunk_end, int v_row, int v_col,
                                                   uint4 v[ATTN_TILE / (256 / D)]) {
  constexpr int D8 = D / 8, RPS = 32 / D8, NV = ATTN_TILE / RPS;
  const uint4 zero = make_uint4(0u, 0u, 0u, 0u);
#pragma unroll
  for (int i = 0; i < NV; i++) {
    const int pos = tile_start + v_row + RPS * i;
    v[i] = pos < chunk_end ? __ldcs(v_rows + (int64_t)pos * D8 + v_col) : zero;
  }
}

// This warp's share of the chunk [chunk_begin, chunk_end): tiles chunk_begin + 16 * (warp + WARPS * j).
// Leaves the warp's (m, l) per head (of the mma's 8) and acc[GT][D] in sm.warp_m / warp_l / warp_acc; a warp
// without tiles leaves m = -inf, l = 0, acc = 0. The caller synchronises the block before reading them.
template <int D, int GT, int WARPS, bool PREFETCH>
static __device__ __forceinline__ void warp_attend(attn_block_smem<D, GT, WARPS> &sm, const uint4 *__restrict__ q_heads,
                                                   const uint4 *__restrict__ k_rows, const uint4 *__restrict__ v_rows,
                                                   int nheads, int chunk_begin, int chunk_end, float scale_log2) {
  constexpr int D8 = D / 8;           // 16-byte vectors per row
  constexpr int KCHUNKS = D / 32;     // 32-wide k chunks: two mma each
  constexpr int LPR = D / 8;          // P.V: lanes per V row, 8 dims each
  constexpr int RPS = 32 / LPR;       // V rows per warp step
  constexpr int NV = ATTN_TILE / RPS; // V vectors per lane per tile
  constexpr int STEP = WARPS * ATTN_TILE;
  static_assert(D == 64 || D == 128, "D must be 64 or 128");
  static_assert(GT == 1 || GT == 2 || GT == 4 || GT == 8, "GT must be 1, 2, 4 or 8");

  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int g = lane / 4, quad = lane % 4;  // mma fragment coordinates
  const int v_row = lane / LPR, v_col = lane % LPR;
  const uint4 zero = make_uint4(0u, 0u, 0u, 0u);

  uint4 q_frag[KCHUNKS];  // B operand: column g = query head g of the tile (zero past nheads)
  {
    const bool head_ok = g < nheads;
    const uint4 *q_row = q_heads + (int64_t)(head_ok ? g : 0) * D8;
#pragma unroll
    for (int c = 0; c < KCHUNKS; c++) q_frag[c] = head_ok ? __ldg(q_row + 4 * c + quad) : zero;
  }

  // Running max (log2 domain) of heads 2quad, 2quad+1 (equal in all lanes of a quad), this lane's part of
  // their sums, and the accumulators of dims v_col*8 .. +7 over this lane's rows, for the GT heads.
  float m_run[2] = {-INFINITY, -INFINITY}, l_part[2] = {0.f, 0.f};
  float acc[GT][8];
#pragma unroll
  for (int h = 0; h < GT; h++)
#pragma unroll
    for (int e = 0; e < 8; e++) acc[h][e] = 0.f;

  int tile_start = chunk_begin + warp * ATTN_TILE;
  uint4 k_a[KCHUNKS], k_b[KCHUNKS], v[NV];
  if (PREFETCH) {
    load_k_tile<D>(k_rows, tile_start, chunk_end, g, quad, k_a, k_b);
    load_v_tile<D>(v_rows, tile_start, chunk_end, v_row, v_col, v);
  }

  for (; tile_start < chunk_end; tile_start += STEP) {
    if (!PREFETCH) {  // one tile in flight per warp, requested only when the previous one is done
      load_k_tile<D>(k_rows, tile_start, chunk_end, g, quad, k_a, k_b);
      load_v_tile<D>(v_rows, tile_start, chunk_end, v_row, v_col, v);
    }
    const bool ok_a = tile_start + g < chunk_end, ok_b = tile_start + g + 8 < chunk_end;
    // Scores: s[0] (row g, head 2quad), s[1] (row g, 2quad+1), s[2] (row g+8, 2quad), s[3] (row g+8, 2quad+1).
    float s[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
    for (int c = 0; c < KCHUNKS; c++) {
      mma_bf16_16816(s, k_a[c].x, k_b[c].x, k_a[c].y, k_b[c].y, q_frag[c].x, q_frag[c].y);
      mma_bf16_16816(s, k_a[c].z, k_b[c].z, k_a[c].w, k_b[c].w, q_frag[c].z, q_frag[c].w);
    }
    // K is consumed: with PREFETCH the next tile's K and V are requested now, before the softmax and P.V.
    uint4 v_next[NV];
    if (PREFETCH) {
      load_k_tile<D>(k_rows, tile_start + STEP, chunk_end, g, quad, k_a, k_b);
      load_v_tile<D>(v_rows, tile_start + STEP, chunk_end, v_row, v_col, v_next);
    }
    s[0] = ok_a ? s[0] * scale_log2 : -INFINITY;
    s[1] = ok_a ? s[1] * scale_log2 : -INFINITY;
    s[2] = ok_b ? s[2] * scale_log2 : -INFINITY;
    s[3] = ok_b ? s[3] * scale_log2 : -INFINITY;

    // Tile max per head over the 16 positions (lanes of equal quad), new running max, rescale factors.
    // Row tile_start (g = 0) is always valid, so the tile max is finite.
    float t0 = fmaxf(s[0], s[2]), t1 = fmaxf(s[1], s[3]);
#pragma unroll
    for (int o = 4; o < 32; o *= 2) {
      t0 = fmaxf(t0, __shfl_xor_sync(0xffffffffu, t0, o));
      t1 = fmaxf(t1, __shfl_xor_sync(0xffffffffu, t1, o));
    }
    const float m0 = fmaxf(m_run[0], t0), m1 = fmaxf(m_run[1], t1);
    const float alpha0 = exp2f(m_run[0] - m0), alpha1 = exp2f(m_run[1] - m1);  // 0 on the first tile
    m_run[0] = m0, m_run[1] = m1;
    const float p0 = exp2f(s[0] - m0), p1 = exp2f(s[1] - m1), p2 = exp2f(s[2] - m0), p3 = exp2f(s[3] - m1);
    l_part[0] = l_part[0] * alpha0 + p0 + p2;
    l_part[1] = l_part[1] * alpha1 + p1 + p3;
    sm.p[warp][g][2 * quad] = p0;
    sm.p[warp][g][2 * quad + 1] = p1;
    sm.p[warp][g + 8][2 * quad] = p2;
    sm.p[warp][g + 8][2 * quad + 1] = p3;
    if (g == 0) sm.alpha[warp][2 * quad] = alpha0, sm.alpha[warp][2 * quad + 1] = alpha1;
    __syncwarp();

    // P.V in fp32: lane (v_row, v_col) adds its rows' weighted dims v_col*8 .. +7 for every head. Rows past
    // the chunk have p = 0 and v = 0 (never loaded).
#pragma unroll
    for (int h = 0; h < GT; h++) {
      const float a = sm.alpha[warp][h];
#pragma unroll
      for (int e = 0; e < 8; e++) acc[h][e] *= a;
    }
#pragma unroll
    for (int i = 0; i < NV; i++) {
      float vf[8];
      unpack8(v[i], vf);
      const int row = v_row + RPS * i;
#pragma unroll
      for (int h = 0; h < GT; h++) {
        const float p = sm.p[warp][row][h];
#pragma unroll
        for (int e = 0; e < 8; e++) acc[h][e] = fmaf(p, vf[e], acc[h][e]);
      }
    }
    __syncwarp();  // p and alpha are rewritten by the next tile
    if (PREFETCH) {
#pragma unroll
      for (int i = 0; i < NV; i++) v[i] = v_next[i];
    }
  }

  // ---- warp totals: sums over the quad's lanes, accumulators over the lanes of equal v_col ----
#pragma unroll
  for (int o = 4; o < 32; o *= 2) {
    l_part[0] += __shfl_xor_sync(0xffffffffu, l_part[0], o);
    l_part[1] += __shfl_xor_sync(0xffffffffu, l_part[1], o);
  }
#pragma unroll
  for (int o = 16; o >= LPR; o /= 2)
#pragma unroll
    for (int h = 0; h < GT; h++)
#pragma unroll
      for (int e = 0; e < 8; e++) acc[h][e] += __shfl_xor_sync(0xffffffffu, acc[h][e], o);
  if (lane < 4) {  // g == 0, quad == lane
    sm.warp_m[warp][2 * lane] = m_run[0], sm.warp_m[warp][2 * lane + 1] = m_run[1];
    sm.warp_l[warp][2 * lane] = l_part[0], sm.warp_l[warp][2 * lane + 1] = l_part[1];
  }
  if (lane < LPR) {  // v_row == 0, v_col == lane
#pragma unroll
    for (int h = 0; h < GT; h++)
#pragma unroll
      for (int e = 0; e < 8; e++) sm.warp_acc[warp][h][lane * 8 + e] = acc[h][e];
  }
}

// The block's partial for head h (< GT) and dims 4*d4 .. +3: the warps combined with the log-sum-exp rule.
// m = -inf, l = 0, o = 0 when no warp had a position (an idle block of a cluster).
template <int D, int GT, int WARPS>
static __device__ __forceinline__ void block_combine(const attn_block_smem<D, GT, WARPS> &sm, int h, int d4, float *m_out,
                                                     float *l_out, float4 *o_out) {
  float m = -INFINITY;
#pragma unroll
  for (int w = 0; w < WARPS; w++) m = fmaxf(m, sm.warp_m[w][h]);
  float l = 0.f;
  float4 o = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
  for (int w = 0; w < WARPS; w++) {
    const float wm = sm.warp_m[w][h];
    const float wt = wm == -INFINITY ? 0.f : exp2f(wm - m);  // (also avoids -inf - -inf)
    const float4 a = reinterpret_cast<const float4 *>(&sm.warp_acc[w][h][0])[d4];
    o.x = fmaf(a.x, wt, o.x), o.y = fmaf(a.y, wt, o.y), o.z = fmaf(a.z, wt, o.z), o.w = fmaf(a.w, wt, o.w);
    l = fmaf(sm.warp_l[w][h], wt, l);
  }
  *m_out = m, *l_out = l, *o_out = o;
}

// (M, L, O) <- the log-sum-exp union of (M, L, O) and (m, l, o); either side may be empty (m = -inf).
static __device__ __forceinline__ void lse_merge(float &M, float &L, float4 &O, float m, float l, float4 o) {
  const float nm = fmaxf(M, m);
  if (nm == -INFINITY) return;  // both empty
  const float a = M == -INFINITY ? 0.f : exp2f(M - nm), b = m == -INFINITY ? 0.f : exp2f(m - nm);
  L = L * a + l * b;
  O.x = O.x * a + o.x * b, O.y = O.y * a + o.y * b, O.z = O.z * a + o.z * b, O.w = O.w * a + o.w * b;
  M = nm;
}

// Merge with the (M, L, O) of lane ^ offset (a butterfly: both lanes end with the union).
static __device__ __forceinline__ void lse_merge_lane(float &M, float &L, float4 &O, int offset) {
  const float m = __shfl_xor_sync(0xffffffffu, M, offset), l = __shfl_xor_sync(0xffffffffu, L, offset);
  float4 o;
  o.x = __shfl_xor_sync(0xffffffffu, O.x, offset), o.y = __shfl_xor_sync(0xffffffffu, O.y, offset);
  o.z = __shfl_xor_sync(0xffffffffu, O.z, offset), o.w = __shfl_xor_sync(0xffffffffu, O.w, offset);
  lse_merge(M, L, O, m, l, o);
}

// out[head][4*d4 .. +3] = o * inv_l in bf16 (one 8-byte store; out is 16-byte aligned and D % 4 == 0).
template <int D>
static __device__ __forceinline__ void store_out4(__nv_bfloat16 *out, int head, int d4, float4 o, float inv_l) {
  __nv_bfloat162 lo = __floats2bfloat162_rn(o.x * inv_l, o.y * inv_l), hi = __floats2bfloat162_rn(o.z * inv_l, o.w * inv_l);
  uint2 packed;
  packed.x = *reinterpret_cast<unsigned *>(&lo);
  packed.y = *reinterpret_cast<unsigned *>(&hi);
  *reinterpret_cast<uint2 *>(out + (int64_t)head * D + 4 * d4) = packed;
}

#endif
