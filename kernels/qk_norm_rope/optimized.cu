// qk_norm_rope, optimized. Three kernels share this file:
//
// * The vec8 kernel (the optimized path: D/2 a multiple of 8 with D/16 a power of two, i.e. D = 16 .. 512,
//   Qwen3's 128 included, and 16-byte aligned tensors). One block per (token, chunk of head items); a chunk
//   is SLOTS x WARPS x (32 / LPH) consecutive items of the token's qkv row, where LPH = D/16 lanes hold one
//   head: lane `sub` of a head's group holds the 8 elements [8 sub, 8 sub + 8) of the head's FIRST half and
//   the same 8 of its SECOND half (two 16-byte loads), so the rotate-half partner of every element it holds
//   is in its own registers. For D = 128: 8 lanes per head, 4 heads per warp per slot, 4 warps and 3 slots
//   = 48 items per block - exactly Qwen3-4B/8B's 32 q + 8 k + 8 v heads, one block per token. Every lane
//   issues all 2 x SLOTS of its loads first (96 bytes; 12 KB per block, 3x the previous kernel's bytes in
//   flight per warp), then the block builds its token's angle table and stages the two norm weights in
//   shared memory while those loads are in flight, then each head's sum of squares is a shuffle reduction
//   inside its group of LPH lanes. q, k and v items may share a warp (HQ need not be a multiple of the heads
//   per warp), so all lanes run the shuffles and only the stores branch.
// * The pipe kernel (a candidate): persistent blocks owning whole tokens, the next tokens' rows streamed
//   into shared memory by cp.async while the current one goes through the vec8 kernel's steps.
// * The pairs kernel (v1, the previous optimized kernel; also the fallback for every other D and for
//   tensors that are only 4-byte aligned): one warp per head item, 4 items per warp, 4-byte bf16-pair loads
//   (or single bf16 where D/2 is odd), one block per 16 items of one token.
//
// Angles (all kernels): theta^(-2i/D) and pos * inv_freq are evaluated in float64 (exp2 of a float64
// exponent), reduced into [-pi, pi] with a two-constant (Cody-Waite) 2*pi in float64, and only then handed
// to the accurate sincosf (not __sincosf). Error: the float64 angle is off by about |a| * 1.4e-15 (~1e-9
// rad at position 1e6), the reduction adds ~2^-52, rounding the reduced angle to float adds <= 2.4e-7 rad,
// sincosf <= 2 ulp: a few 1e-7 in total, far below one bf16 ulp (3.9e-3), at any position. (A plain float
// pos * freq would be off by up to pos * 2^-24 = 2e-3 rad at position 32768: as large as a bf16 rounding.)
// The angles depend only on (token, i), not on the head, so each block computes its token's D/2 angles once
// into shared memory and all its heads share them; blocks that hold only v heads skip it.
//
// Each head item of the row, in qkv order: [0, HQ) q heads -> q_out, [HQ, HQ+HKV) k heads -> k_cache,
// [HQ+HKV, HQ+2*HKV) v heads -> v_cache unchanged. A position outside the cache (possible only with p0_dev)
// writes NaN into q_out and nothing into the caches.
#include <cuda_bf16.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include "kernels/qk_norm_rope/qk_norm_rope.h"
#include "kernels/common/launch.cuh"

#define MAX_HALF 256 /* D <= 512: the angle table of one token fits in 2 KB of shared memory */

// 2*pi split into a float64 head and tail (head + tail = 2*pi to ~1e-32) for the angle reduction.
#define TWO_PI_HI 6.283185307179586232e+00
#define TWO_PI_LO 2.449293598294706414e-16
#define INV_TWO_PI 1.591549430918953358e-01

typedef struct {
  const uint16_t *qkv, *q_norm_w, *k_norm_w;
  uint16_t *q_out, *k_cache, *v_cache;
  const int32_t *p0_dev; /* NULL: use p0 */
  int64_t p0, HQ, HKV, D, cache_stride;
  double exponent_step; /* -2 log2(theta) / D: angle i has inv_freq = exp2(i * exponent_step) = theta^(-2i/D) */
  float eps;
  float inv_d;  /* 1/D (exact for the vec8 kernel's power-of-two D) */
  int lph_log2; /* vec8 kernel: log2 of the lanes per head (D/16) */
} opt_params;

// cos/sin of angle i of position pos, as described above (i < D/2).
static __device__ __forceinline__ void rope_angle(int64_t pos, int i, double exponent_step, float *c, float *s) {
  const double inv_freq = exp2((double)i * exponent_step); /* theta^(-2i/D); no float64 division on the device */
  const double a = (double)pos * inv_freq;
  const double turns = rint(a * INV_TWO_PI);
  double reduced = fma(-turns, TWO_PI_HI, a);
  reduced = fma(-turns, TWO_PI_LO, reduced);
  sincosf((float)reduced, s, c);
}

// Element v (0 or 1) of a packed bf16 pair, as float: bf16 bits are the high half of the float's bits.
static __device__ __forceinline__ float element(uint32_t bits, int v) {
  return __uint_as_float(v == 0 ? bits << 16 : bits & 0xffff0000u);
}
static __device__ __forceinline__ uint32_t bf16_bits(float f) {
  return (uint32_t)__bfloat16_as_ushort(__float2bfloat16_rn(f));
}

// ------------------------------------------------------------------------------------------------------
// vec8 kernel
// ------------------------------------------------------------------------------------------------------
// Blocks per SM the compiler must allow (__launch_bounds__), from a register budget per thread by SLOTS.
// Left alone, ptxas interleaves the rotations of all slots and took up to 117 registers at 3 slots (4 blocks
// of 4 warps per SM); within 80 it schedules them without spilling (checked with -Xptxas -v for every
// instantiation below).
static constexpr int vec8_register_budget(int slots) { return slots <= 1 ? 48 : slots == 2 ? 64 : slots == 3 ? 80 : 168; }
static constexpr int vec8_min_blocks(int slots, int warps) {
  return 65536 / (32 * warps * vec8_register_budget(slots)) > 0 ? 65536 / (32 * warps * vec8_register_budget(slots)) : 1;
}
#define BF16X2_NAN 0x7fc07fc0u /* two bf16 quiet NaNs (what rounding a float quiet NaN gives) */

static __device__ __forceinline__ uint32_t word_of(const uint4 &q, int k) {
  return k == 0 ? q.x : k == 1 ? q.y : k == 2 ? q.z : q.w;
}
static __device__ __forceinline__ float sum_squares8(const uint4 &q) {
  float ss = 0.f;
#pragma unroll
  for (int k = 0; k < 4; k++) {
    const float a = element(word_of(q, k), 0), b = element(word_of(q, k), 1);
    ss += a * a + b * b;
  }
  return ss;
}

// The 8 element pairs (i, i + D/2) of one lane: norm, weight, rotate, round to bf16 once.
static __device__ __forceinline__ void norm_rotate8(const uint4 &x_lo, const uint4 &x_hi, const uint4 &w_lo,
                                                    const uint4 &w_hi, float inv, const float4 *cs, const float4 *sn,
                                                    uint4 *out_lo, uint4 *out_hi) {
  const float4 c0 = cs[0], c1 = cs[1], s0 = sn[0], s1 = sn[1];
  const float cos8[8] = {c0.x, c0.y, c0.z, c0.w, c1.x, c1.y, c1.z, c1.w};
  const float sin8[8] = {s0.x, s0.y, s0.z, s0.w, s1.x, s1.y, s1.z, s1.w};
  uint32_t lo_words[4], hi_words[4];
#pragma unroll
  for (int k = 0; k < 4; k++) {
    uint32_t lo_word = 0u, hi_word = 0u;
#pragma unroll
    for (int v = 0; v < 2; v++) {
      const int e = 2 * k + v;
      const float x0 = element(word_of(x_lo, k), v) * inv * element(word_of(w_lo, k), v);
      const float x1 = element(word_of(x_hi, k), v) * inv * element(word_of(w_hi, k), v);
      const float o0 = x0 * cos8[e] - x1 * sin8[e], o1 = x1 * cos8[e] + x0 * sin8[e];
      lo_word |= bf16_bits(o0) << (16 * v);
      hi_word |= bf16_bits(o1) << (16 * v);
    }
    lo_words[k] = lo_word, hi_words[k] = hi_word;
  }
  *out_lo = make_uint4(lo_words[0], lo_words[1], lo_words[2], lo_words[3]);
  *out_hi = make_uint4(hi_words[0], hi_words[1], hi_words[2], hi_words[3]);
}

// Steps 3 and 4 of a token's items, after the barrier that publishes the angle table and the weights: the
// sums of squares (every lane takes part in every shuffle: all 32 lanes, uniform trip counts; the xor
// offsets below lph stay inside the lane's aligned group of lph lanes), then norm, rotate, store (lanes
// diverge only there, after the last shuffle). Row bases are per token; a cache head is cache_stride * D
// elements long.
template <int SLOTS>
static __device__ __forceinline__ void finish_token(const opt_params &p, const uint4 (&lo)[SLOTS], const uint4 (&hi)[SLOTS],
                                                    int my_item, int items_per_slot, int sub, int64_t t, int64_t pos,
                                                    bool pos_ok, const float *cos_table, const float *sin_table,
                                                    const uint4 (*weights)[2 * MAX_HALF / 8]) {
  const int lph = 1 << p.lph_log2;
  const int HQ = (int)p.HQ, n_rope = (int)(p.HQ + p.HKV), n_items = (int)(p.HQ + 2 * p.HKV);
  const int D = (int)p.D, vecs = D / 8;
  float ss[SLOTS];
#pragma unroll
  for (int s = 0; s < SLOTS; s++) ss[s] = sum_squares8(lo[s]) + sum_squares8(hi[s]);
  for (int o = lph / 2; o > 0; o /= 2)
#pragma unroll
    for (int s = 0; s < SLOTS; s++) ss[s] += __shfl_xor_sync(0xffffffffu, ss[s], o);

  const float4 *cs = reinterpret_cast<const float4 *>(cos_table) + 2 * sub;
  const float4 *sn = reinterpret_cast<const float4 *>(sin_table) + 2 * sub;
  uint4 *const q_row = reinterpret_cast<uint4 *>(p.q_out + t * HQ * D);      /* [item][vecs] */
  const int64_t pos_row = pos_ok ? pos : 0; /* never form an address outside the caches */
  uint4 *const k_row = reinterpret_cast<uint4 *>(p.k_cache + pos_row * D); /* + head * head_vecs */
  uint4 *const v_row = reinterpret_cast<uint4 *>(p.v_cache + pos_row * D);
  const int64_t head_vecs = p.cache_stride * vecs;
#pragma unroll
  for (int s = 0; s < SLOTS; s++) {
    const int item = my_item + s * items_per_slot;
    if (item >= n_items) continue;
    if (item >= n_rope) { /* v head: exact copy into the cache */
      if (pos_ok) {
        uint4 *dst = v_row + (item - n_rope) * head_vecs;
        dst[sub] = lo[s];
        dst[lph + sub] = hi[s];
      }
      continue;
    }
    const bool is_q = item < HQ;
    if (!is_q && !pos_ok) continue; /* a k head at a position outside the cache: nothing may be written */
    const float inv = rsqrtf(ss[s] * p.inv_d + p.eps);
    const uint4 *w = weights[is_q ? 0 : 1];
    uint4 out_lo = make_uint4(BF16X2_NAN, BF16X2_NAN, BF16X2_NAN, BF16X2_NAN), out_hi = out_lo; /* a broken position must show */
    if (pos_ok) norm_rotate8(lo[s], hi[s], w[sub], w[lph + sub], inv, cs, sn, &out_lo, &out_hi);
    uint4 *dst = is_q ? q_row + item * vecs : k_row + (item - HQ) * head_vecs;
    dst[sub] = out_lo; /* default policy: attention reads q_out and the new cache rows next */
    dst[lph + sub] = out_hi;
  }
}

// grid.x = token, grid.y = chunk of SLOTS * WARPS * (32 / LPH) items of the token's row; WARPS * 32 threads.
template <int SLOTS, int WARPS>
__global__ void __launch_bounds__(WARPS * 32, vec8_min_blocks(SLOTS, WARPS)) qk_norm_rope_vec8_kernel(opt_params p) {
  __shared__ __align__(16) float cos_table[MAX_HALF];
  __shared__ __align__(16) float sin_table[MAX_HALF];
  __shared__ uint4 weights[2][2 * MAX_HALF / 8]; /* [0]: q_norm_w, [1]: k_norm_w, D/8 vectors each */
  klab_pdl_enter();  // q|k|v and the position come from the kernels before us
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int lph = 1 << p.lph_log2;       /* lanes per head = D/16 = 16-byte vectors per half */
  const int group = lane >> p.lph_log2;  /* the head of this lane within the warp's slot */
  const int sub = lane & (lph - 1);      /* the lane's vector within each half */
  const int items_per_slot = WARPS << (5 - p.lph_log2);
  const int64_t t = blockIdx.x;
  // Item indices fit in int: HQ + 2*HKV <= 65535 (checked by the launcher), a block's items just past it.
  const int n_rope = (int)(p.HQ + p.HKV), n_items = (int)(p.HQ + 2 * p.HKV);
  const int first_item = (int)blockIdx.y * SLOTS * items_per_slot;
  const int my_item = first_item + (warp << (5 - p.lph_log2)) + group; /* + s * items_per_slot */
  const int D = (int)p.D, half = D / 2, vecs = D / 8;
  const uint4 *row = reinterpret_cast<const uint4 *>(p.qkv) + t * n_items * (int64_t)vecs;

  // 1. Issue every load of this lane (lanes of items past the row's end hold zeros and store nothing).
  uint4 lo[SLOTS], hi[SLOTS];
#pragma unroll
  for (int s = 0; s < SLOTS; s++) {
    const int item = my_item + s * items_per_slot;
    lo[s] = hi[s] = make_uint4(0u, 0u, 0u, 0u);
    if (item < n_items) {
      const uint4 *head = row + item * vecs;
      lo[s] = __ldcs(head + sub);       /* read-once activations: evict-first */
      hi[s] = __ldcs(head + lph + sub);
    }
  }
  const int64_t pos = (p.p0_dev ? (int64_t)*p.p0_dev : p.p0) + t;
  const bool pos_ok = pos >= 0 && pos < p.cache_stride; /* else: NaN into q_out, no cache write */

  // 2. While they are in flight: this token's angles and both norm weights, once per block (skipped by
  //    blocks that hold only v heads; block-uniform, so every thread reaches the barrier).
  if (first_item < n_rope) {
    // Not unrolled: D = 128 is one angle per thread of the first 64, and an unrolled float64 loop would raise
    // the register count (the loaded rows are live across it) and with it lower the blocks per SM.
#pragma unroll 1
    for (int i = threadIdx.x; i < half; i += WARPS * 32) rope_angle(pos, i, p.exponent_step, &cos_table[i], &sin_table[i]);
#pragma unroll 1
    for (int i = threadIdx.x; i < 2 * vecs; i += WARPS * 32) {
      const int which = i / vecs, j = i - which * vecs;
      weights[which][j] = __ldg(reinterpret_cast<const uint4 *>(which == 0 ? p.q_norm_w : p.k_norm_w) + j);
    }
  }
  __syncthreads();

  finish_token<SLOTS>(p, lo, hi, my_item, items_per_slot, sub, t, pos, pos_ok, cos_table, sin_table, weights);
}

// ------------------------------------------------------------------------------------------------------
// pipe kernel (candidate): persistent blocks, each owning whole tokens (t = blockIdx.x, + gridDim.x, ...),
// with the next PIPE_STAGES - 1 tokens' qkv rows streaming into shared memory by cp.async while the
// current token is processed: the loads of a block never pause between tokens, and no register holds them.
// Per token: angle table, wait for its row, barrier, the vec8 lane layout read from shared memory, the
// same finish_token, barrier (the row buffer and the table are free again).
// ------------------------------------------------------------------------------------------------------
#define PIPE_WARPS 4
#define PIPE_STAGES 3
#define PIPE_MAX_ROW_BYTES 14336 /* 3 stages + 4 KB of tables stay under the 48 KB of default shared memory */
#define PIPE_MAX_SLOTS 4         /* 14336 / (2 D) items at 4 x 32 / (D/16) per slot: at most 3.5 slots */

static __device__ __forceinline__ void cp_async16(void *smem_dst, const void *gmem_src) {
  const unsigned dst = (unsigned)__cvta_generic_to_shared(smem_dst);
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(gmem_src) : "memory");
}
static __device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
static __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }

// All threads of the block copy one token's row (row_vecs 16-byte vectors) into a stage buffer.
static __device__ __forceinline__ void pipe_copy_row(uint4 *dst, const uint4 *src, int row_vecs) {
  for (int v = threadIdx.x; v < row_vecs; v += PIPE_WARPS * 32) cp_async16(dst + v, src + v);
}

template <int SLOTS>
__global__ void __launch_bounds__(PIPE_WARPS * 32, SLOTS <= 3 ? 4 : 3) /* shared memory allows 4-5 blocks per SM */
qk_norm_rope_pipe_kernel(opt_params p, int64_t T) {
  extern __shared__ uint4 stage_rows[]; /* [PIPE_STAGES][row_vecs] */
  __shared__ __align__(16) float cos_table[MAX_HALF];
  __shared__ __align__(16) float sin_table[MAX_HALF];
  __shared__ uint4 weights[2][2 * MAX_HALF / 8];
  klab_pdl_enter();  // q|k|v and the position come from the kernels before us
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int lph = 1 << p.lph_log2;
  const int group = lane >> p.lph_log2, sub = lane & (lph - 1);
  const int items_per_slot = PIPE_WARPS << (5 - p.lph_log2);
  const int n_items = (int)(p.HQ + 2 * p.HKV);
  const int my_item = (warp << (5 - p.lph_log2)) + group; /* the block covers the whole row: SLOTS slots */
  const int D = (int)p.D, half = D / 2, vecs = D / 8, row_vecs = n_items * vecs;
  const uint4 *qkv = reinterpret_cast<const uint4 *>(p.qkv);
  const int64_t G = gridDim.x;

  for (int i = threadIdx.x; i < 2 * vecs; i += PIPE_WARPS * 32) {
    const int which = i / vecs, j = i - which * vecs;
    weights[which][j] = __ldg(reinterpret_cast<const uint4 *>(which == 0 ? p.q_norm_w : p.k_norm_w) + j);
  }
  // Prologue: the first PIPE_STAGES - 1 tokens, one commit group each (empty past T, to keep the count).
#pragma unroll
  for (int k = 0; k < PIPE_STAGES - 1; k++) {
    const int64_t token = (int64_t)blockIdx.x + k * G;
    if (token < T) pipe_copy_row(stage_rows + k * row_vecs, qkv + token * row_vecs, row_vecs);
    cp_async_commit();
  }
  int stage = 0;
  for (int64_t t = blockIdx.x; t < T; t += G) {
    // The token PIPE_STAGES - 1 ahead goes into the buffer the previous token used (freed by the barrier
    // that ended the previous iteration).
    const int64_t ahead = t + (PIPE_STAGES - 1) * G;
    const int ahead_stage = (stage + PIPE_STAGES - 1) % PIPE_STAGES;
    if (ahead < T) pipe_copy_row(stage_rows + ahead_stage * row_vecs, qkv + ahead * row_vecs, row_vecs);
    cp_async_commit();

    const int64_t pos = (p.p0_dev ? (int64_t)*p.p0_dev : p.p0) + t;
    const bool pos_ok = pos >= 0 && pos < p.cache_stride;
#pragma unroll 1
    for (int i = threadIdx.x; i < half; i += PIPE_WARPS * 32) rope_angle(pos, i, p.exponent_step, &cos_table[i], &sin_table[i]);
    cp_async_wait<PIPE_STAGES - 1>(); /* this thread's copies of token t have landed ... */
    __syncthreads();                   /* ... and everyone's, with the angle table (and, once, the weights) */

    const uint4 *row = stage_rows + stage * row_vecs;
    uint4 lo[SLOTS], hi[SLOTS];
#pragma unroll
    for (int s = 0; s < SLOTS; s++) {
      const int item = my_item + s * items_per_slot;
      lo[s] = hi[s] = make_uint4(0u, 0u, 0u, 0u);
      if (item < n_items) {
        lo[s] = row[item * vecs + sub];
        hi[s] = row[item * vecs + lph + sub];
      }
    }
    finish_token<SLOTS>(p, lo, hi, my_item, items_per_slot, sub, t, pos, pos_ok, cos_table, sin_table, weights);
    __syncthreads(); /* the row buffer and the angle table are read: the next iteration may overwrite them */
    stage = (stage + 1) % PIPE_STAGES;
  }
  cp_async_wait<0>(); /* nothing is pending here (every copy was waited for); kept as a guard */
}

// ------------------------------------------------------------------------------------------------------
// pairs kernel (v1 and the fallback)
// ------------------------------------------------------------------------------------------------------
#define PAIRS_WARPS 4
#define PAIRS_HEADS_PER_WARP 4 /* four heads' loads in flight per warp: 1 KB per warp at D = 128 */
#define PAIRS_ITEMS_PER_BLOCK (PAIRS_WARPS * PAIRS_HEADS_PER_WARP)

// VEC (1 or 2) bf16 values as raw bits in a uint32, element 0 in the low 16 bits (little-endian memory).
template <int VEC>
static __device__ __forceinline__ uint32_t load_stream(const uint16_t *src) { /* read-once activations */
  if (VEC == 2) return __ldcs(reinterpret_cast<const unsigned int *>(src));
  return (uint32_t)__ldcs(reinterpret_cast<const unsigned short *>(src));
}
template <int VEC>
static __device__ __forceinline__ uint32_t load_weight(const uint16_t *src) { /* reused by every head: cached */
  if (VEC == 2) return __ldg(reinterpret_cast<const unsigned int *>(src));
  return (uint32_t)__ldg(reinterpret_cast<const unsigned short *>(src));
}
template <int VEC>
static __device__ __forceinline__ void store_bits(uint16_t *dst, uint32_t bits) {
  if (VEC == 2) *reinterpret_cast<unsigned int *>(dst) = bits;
  else *dst = (uint16_t)bits;
}

// Lane l holds elements e..e+VEC-1 (e = (l + 32c) * VEC) of the first half and the same of the second half.
template <int VEC, int CHUNKS>
__global__ void __launch_bounds__(PAIRS_WARPS * 32) qk_norm_rope_pairs_kernel(opt_params p) {
  __shared__ float cos_table[MAX_HALF], sin_table[MAX_HALF];
  klab_pdl_enter();  // q|k|v and the position come from the kernels before us
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t t = blockIdx.x;
  const int64_t n_rope = p.HQ + p.HKV, n_items = n_rope + p.HKV;
  const int64_t first_item = (int64_t)blockIdx.y * PAIRS_ITEMS_PER_BLOCK;
  const int D = (int)p.D, half = D / 2;
  const int64_t pos = (p.p0_dev ? (int64_t)*p.p0_dev : p.p0) + t;
  const bool pos_ok = pos >= 0 && pos < p.cache_stride; /* else: NaN into q_out, no cache write */
  const uint16_t *row = p.qkv + t * n_items * (int64_t)D;

  // 1. Issue this warp's loads (raw bits; lanes past the head's end hold zeros and are never stored).
  uint32_t lo[PAIRS_HEADS_PER_WARP][CHUNKS], hi[PAIRS_HEADS_PER_WARP][CHUNKS];
#pragma unroll
  for (int k = 0; k < PAIRS_HEADS_PER_WARP; k++) {
    const int64_t item = first_item + warp + k * PAIRS_WARPS;
#pragma unroll
    for (int c = 0; c < CHUNKS; c++) {
      const int e = (lane + 32 * c) * VEC;
      lo[k][c] = hi[k][c] = 0u;
      if (item < n_items && e < half) { /* VEC 2 only when half is even, so e + 1 < half too */
        const uint16_t *head = row + item * D;
        lo[k][c] = load_stream<VEC>(head + e);
        hi[k][c] = load_stream<VEC>(head + half + e);
      }
    }
  }

  // 2. This token's angles, once per block (skipped by blocks that hold only v heads; block-uniform).
  if (first_item < n_rope)
    for (int i = threadIdx.x; i < half; i += blockDim.x) rope_angle(pos, i, p.exponent_step, &cos_table[i], &sin_table[i]);
  __syncthreads(); /* reached by every thread: no return above */

  // 3. Norm, rotate, store; one item per warp at a time (all branches below are warp-uniform).
#pragma unroll
  for (int k = 0; k < PAIRS_HEADS_PER_WARP; k++) {
    const int64_t item = first_item + warp + k * PAIRS_WARPS;
    if (item >= n_items) continue;
    if (item >= n_rope) { /* v head: exact copy into the cache */
      if (!pos_ok) continue;
      uint16_t *dst = p.v_cache + ((item - n_rope) * p.cache_stride + pos) * D;
#pragma unroll
      for (int c = 0; c < CHUNKS; c++) {
        const int e = (lane + 32 * c) * VEC;
        if (e < half) {
          store_bits<VEC>(dst + e, lo[k][c]);
          store_bits<VEC>(dst + half + e, hi[k][c]);
        }
      }
      continue;
    }
    float ss = 0.f; /* inactive lanes hold zeros */
#pragma unroll
    for (int c = 0; c < CHUNKS; c++)
#pragma unroll
      for (int v = 0; v < VEC; v++) {
        const float a = element(lo[k][c], v), b = element(hi[k][c], v);
        ss += a * a + b * b;
      }
#pragma unroll
    for (int o = 16; o > 0; o /= 2) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    const float inv = rsqrtf(ss / (float)D + p.eps);

    const bool is_q = item < p.HQ;
    if (!is_q && !pos_ok) continue; /* a k head at a position outside the cache: nothing may be written */
    const uint16_t *w = is_q ? p.q_norm_w : p.k_norm_w;
    uint16_t *dst = is_q ? p.q_out + (t * p.HQ + item) * D : p.k_cache + ((item - p.HQ) * p.cache_stride + pos) * D;
#pragma unroll
    for (int c = 0; c < CHUNKS; c++) {
      const int e = (lane + 32 * c) * VEC;
      if (e >= half) continue;
      const uint32_t w_lo = load_weight<VEC>(w + e), w_hi = load_weight<VEC>(w + half + e);
      uint32_t out_lo = 0u, out_hi = 0u;
#pragma unroll
      for (int v = 0; v < VEC; v++) {
        const int i = e + v;
        const float x0 = element(lo[k][c], v) * inv * element(w_lo, v);
        const float x1 = element(hi[k][c], v) * inv * element(w_hi, v);
        const float cs = cos_table[i], sn = sin_table[i];
        float o0 = x0 * cs - x1 * sn, o1 = x1 * cs + x0 * sn;
        if (!pos_ok) o0 = o1 = __int_as_float(0x7fc00000); /* quiet NaN: a broken position must show */
        out_lo |= bf16_bits(o0) << (16 * v);
        out_hi |= bf16_bits(o1) << (16 * v);
      }
      store_bits<VEC>(dst + e, out_lo);
      store_bits<VEC>(dst + half + e, out_hi);
    }
  }
}

// ------------------------------------------------------------------------------------------------------
// launchers
// ------------------------------------------------------------------------------------------------------
static void launch_context(char *ctx, size_t n, const char *name, const char *path, const opt_params *p, int64_t T) {
  snprintf(ctx, n, "qk_norm_rope %s (%s) T=%lld HQ=%lld HKV=%lld D=%lld", name, path, (long long)T, (long long)p->HQ,
           (long long)p->HKV, (long long)p->D);
}

template <int VEC, int CHUNKS>
static int launch_pairs(const char *name, const opt_params *p, int64_t T, cudaStream_t stream, klab_err *err) {
  const int64_t n_items = p->HQ + 2 * p->HKV;
  const dim3 grid((unsigned)T, (unsigned)((n_items + PAIRS_ITEMS_PER_BLOCK - 1) / PAIRS_ITEMS_PER_BLOCK));
  char ctx[192];
  launch_context(ctx, sizeof ctx, name, VEC == 2 ? "bf16 pairs" : "single bf16", p, T);
  KLAB_LAUNCH(err, ctx, grid, PAIRS_WARPS * 32, 0, stream, qk_norm_rope_pairs_kernel<VEC, CHUNKS>, *p);
  return 0;
}

// The pairs kernel: bf16 pairs (4-byte accesses) need an even D/2 and 4-byte aligned tensors (D even makes
// every head and cache row start at a 4-byte multiple); otherwise single bf16 accesses.
static int run_pairs(const char *name, const opt_params *p, int64_t T, cudaStream_t stream, klab_err *err) {
  const int half = (int)(p->D / 2);
  const int aligned4 = (uintptr_t)p->qkv % 4 == 0 && (uintptr_t)p->q_norm_w % 4 == 0 && (uintptr_t)p->k_norm_w % 4 == 0 &&
                       (uintptr_t)p->q_out % 4 == 0 && (uintptr_t)p->k_cache % 4 == 0 && (uintptr_t)p->v_cache % 4 == 0;
  if (half % 2 == 0 && aligned4) {
    const int chunks = (half / 2 + 31) / 32; /* pairs per lane: 1..4 */
    if (chunks <= 1) return launch_pairs<2, 1>(name, p, T, stream, err);
    if (chunks <= 2) return launch_pairs<2, 2>(name, p, T, stream, err);
    return launch_pairs<2, 4>(name, p, T, stream, err);
  }
  const int chunks = (half + 31) / 32; /* elements per lane: 1..8 */
  if (chunks <= 1) return launch_pairs<1, 1>(name, p, T, stream, err);
  if (chunks <= 2) return launch_pairs<1, 2>(name, p, T, stream, err);
  if (chunks <= 4) return launch_pairs<1, 4>(name, p, T, stream, err);
  return launch_pairs<1, 8>(name, p, T, stream, err);
}

template <int SLOTS, int WARPS>
static int launch_vec8(const char *name, const opt_params *p, int64_t T, int64_t grid_y, cudaStream_t stream, klab_err *err) {
  const dim3 grid((unsigned)T, (unsigned)grid_y);
  char ctx[192];
  launch_context(ctx, sizeof ctx, name, "vec8", p, T);
  KLAB_LAUNCH(err, ctx, grid, WARPS * 32, 0, stream, qk_norm_rope_vec8_kernel<SLOTS, WARPS>, *p);
  return 0;
}

// The block shapes of the variants: WARPS warps, at most MAX_SLOTS slots (a shape may need fewer).
template <int WARPS, int MAX_SLOTS>
static int dispatch_vec8(const char *name, const opt_params *p, int64_t T, int slots, int64_t grid_y, cudaStream_t stream,
                         klab_err *err) {
  static_assert(MAX_SLOTS >= 1 && MAX_SLOTS <= 6, "1..6 slots");
  switch (slots < MAX_SLOTS ? slots : MAX_SLOTS) {
    case 1: return launch_vec8<1, WARPS>(name, p, T, grid_y, stream, err);
    case 2: return launch_vec8<(MAX_SLOTS >= 2 ? 2 : 1), WARPS>(name, p, T, grid_y, stream, err);
    case 3: return launch_vec8<(MAX_SLOTS >= 3 ? 3 : 1), WARPS>(name, p, T, grid_y, stream, err);
    case 4: return launch_vec8<(MAX_SLOTS >= 4 ? 4 : 1), WARPS>(name, p, T, grid_y, stream, err);
    case 5: return launch_vec8<(MAX_SLOTS >= 5 ? 5 : 1), WARPS>(name, p, T, grid_y, stream, err);
    default: return launch_vec8<(MAX_SLOTS >= 6 ? 6 : 1), WARPS>(name, p, T, grid_y, stream, err);
  }
}

template <int SLOTS>
static int launch_pipe_slots(const char *name, const opt_params *p, int64_t T, size_t smem, cudaStream_t stream,
                             klab_err *err) {
  char ctx[192];
  launch_context(ctx, sizeof ctx, name, "pipe", p, T);
  // Persistent grid: at most the resident blocks, with the tokens spread so that no block walks one more
  // round than it must (T = 4096 on 132 SMs x 4 blocks: 512 blocks of 8 tokens each).
  int device = 0, sms = 0, per_sm = 0;
  KLAB_CUDA(err, cudaGetDevice(&device), ctx);
  KLAB_CUDA(err, cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), ctx);
  KLAB_CUDA(err, cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, qk_norm_rope_pipe_kernel<SLOTS>, PIPE_WARPS * 32, smem),
            ctx);
  if (sms < 1) sms = 1;
  if (per_sm < 1) per_sm = 1;
  const int64_t resident = (int64_t)sms * per_sm;
  const int64_t rounds = (T + resident - 1) / resident;
  const int64_t grid = (T + rounds - 1) / rounds; /* <= min(T, resident) */
  KLAB_LAUNCH(err, ctx, (unsigned)grid, PIPE_WARPS * 32, smem, stream, qk_norm_rope_pipe_kernel<SLOTS>, *p, T);
  return 0;
}

// The pipe kernel where a token's row fits a stage buffer (Qwen3 0.6B..14B: 8..14 KB; *taken = 1 and the
// launch's 0 / -1), else *taken = 0 and nothing launched, for the caller to take another path.
static int launch_pipe(const char *name, const opt_params *p, int64_t T, int *taken, cudaStream_t stream, klab_err *err) {
  const int64_t n_items = p->HQ + 2 * p->HKV, row_bytes = n_items * p->D * 2;
  *taken = 0;
  if (row_bytes > PIPE_MAX_ROW_BYTES) return 0;
  const int64_t per_slot = (int64_t)PIPE_WARPS << (5 - p->lph_log2);
  const int64_t slots = (n_items + per_slot - 1) / per_slot;
  if (slots > PIPE_MAX_SLOTS) return 0;
  *taken = 1;
  const size_t smem = (size_t)(PIPE_STAGES * row_bytes);
  switch (slots) {
    case 1: return launch_pipe_slots<1>(name, p, T, smem, stream, err);
    case 2: return launch_pipe_slots<2>(name, p, T, smem, stream, err);
    case 3: return launch_pipe_slots<3>(name, p, T, smem, stream, err);
    default: return launch_pipe_slots<4>(name, p, T, smem, stream, err);
  }
}

typedef enum { SHAPE_PAIRS = 0, SHAPE_W4S3, SHAPE_W2S6, SHAPE_W6S2, SHAPE_W12S1, SHAPE_PIPE } block_shape;

// Argument checks, parameters, and the choice of kernel: the vec8 kernel in the given block shape where it
// applies, else the pairs kernel (SHAPE_PAIRS: always the pairs kernel, the v1 variant).
static int run(const char *name, block_shape shape, const uint16_t *qkv, const uint16_t *q_norm_w,
               const uint16_t *k_norm_w, uint16_t *q_out, uint16_t *k_cache, uint16_t *v_cache, const int32_t *p0_dev,
               int64_t p0, int64_t T, int64_t HQ, int64_t HKV, int64_t D, int64_t cache_stride, float theta, float eps,
               cudaStream_t stream, klab_err *err) {
  if (qk_norm_rope_check_args(name, qkv, q_norm_w, k_norm_w, q_out, k_cache, v_cache, p0_dev, p0, T, HQ, HKV, D,
                              cache_stride, theta, eps, err))
    return -1;
  if (D > 2 * MAX_HALF)
    return klab_fail(err, "qk_norm_rope %s: D=%lld exceeds %d (the per-token angle table lives in shared memory)", name,
                     (long long)D, 2 * MAX_HALF);
  opt_params p;
  p.qkv = qkv, p.q_norm_w = q_norm_w, p.k_norm_w = k_norm_w;
  p.q_out = q_out, p.k_cache = k_cache, p.v_cache = v_cache;
  p.p0_dev = p0_dev;
  p.p0 = p0;
  p.HQ = HQ, p.HKV = HKV, p.D = D, p.cache_stride = cache_stride;
  p.exponent_step = -2.0 * log2((double)theta) / (double)D;
  p.eps = eps;
  p.inv_d = (float)(1.0 / (double)D);
  p.lph_log2 = 0;

  const int64_t half = D / 2, lph = half / 8;
  const int lph_pow2 = half % 8 == 0 && lph >= 1 && lph <= 32 && (lph & (lph - 1)) == 0;
  const int aligned16 = (uintptr_t)qkv % 16 == 0 && (uintptr_t)q_norm_w % 16 == 0 && (uintptr_t)k_norm_w % 16 == 0 &&
                        (uintptr_t)q_out % 16 == 0 && (uintptr_t)k_cache % 16 == 0 && (uintptr_t)v_cache % 16 == 0;
  if (shape == SHAPE_PAIRS || !lph_pow2 || !aligned16) return run_pairs(name, &p, T, stream, err);

  while ((1 << p.lph_log2) < lph) p.lph_log2++;
  if (shape == SHAPE_PIPE) {
    int taken = 0;
    const int rc = launch_pipe(name, &p, T, &taken, stream, err);
    if (taken) return rc;
    shape = SHAPE_W4S3; /* rows above the stage buffer: the optimized block shape */
  }
  const int warps = shape == SHAPE_W4S3 ? 4 : shape == SHAPE_W2S6 ? 2 : shape == SHAPE_W6S2 ? 6 : 12;
  const int max_slots = shape == SHAPE_W4S3 ? 3 : shape == SHAPE_W2S6 ? 6 : shape == SHAPE_W6S2 ? 2 : 1;
  // Split the token's items into equal chunks of at most max_slots slots, one block each.
  const int64_t n_items = HQ + 2 * HKV, per_slot = (int64_t)warps * (32 / lph);
  const int64_t total_slots = (n_items + per_slot - 1) / per_slot;
  const int64_t chunks = (total_slots + max_slots - 1) / max_slots;
  const int slots = (int)((total_slots + chunks - 1) / chunks); /* <= max_slots */
  const int64_t grid_y = (n_items + slots * per_slot - 1) / (slots * per_slot); /* <= chunks <= 65535 */
  switch (shape) {
    case SHAPE_W4S3: return dispatch_vec8<4, 3>(name, &p, T, slots, grid_y, stream, err);
    case SHAPE_W2S6: return dispatch_vec8<2, 6>(name, &p, T, slots, grid_y, stream, err);
    case SHAPE_W6S2: return dispatch_vec8<6, 2>(name, &p, T, slots, grid_y, stream, err);
    default: return dispatch_vec8<12, 1>(name, &p, T, slots, grid_y, stream, err);
  }
}

#define QKNR_ARGS                                                                                                      \
  const uint16_t *qkv, const uint16_t *q_norm_w, const uint16_t *k_norm_w, uint16_t *q_out, uint16_t *k_cache,         \
      uint16_t *v_cache, const int32_t *p0_dev, int64_t p0, int64_t T, int64_t HQ, int64_t HKV, int64_t D,             \
      int64_t cache_stride, float theta, float eps, cudaStream_t stream, klab_err *err
#define QKNR_PASS                                                                                                      \
  qkv, q_norm_w, k_norm_w, q_out, k_cache, v_cache, p0_dev, p0, T, HQ, HKV, D, cache_stride, theta, eps, stream, err

// optimized: 4 warps x 3 slots (D = 128: 48 items, one block per Qwen3-4B/8B token).
extern "C" int qk_norm_rope_optimized(QKNR_ARGS) { return run("optimized", SHAPE_W4S3, QKNR_PASS); }
extern "C" int qk_norm_rope_w2s6(QKNR_ARGS) { return run("w2s6", SHAPE_W2S6, QKNR_PASS); }
extern "C" int qk_norm_rope_w6s2(QKNR_ARGS) { return run("w6s2", SHAPE_W6S2, QKNR_PASS); }
extern "C" int qk_norm_rope_w12s1(QKNR_ARGS) { return run("w12s1", SHAPE_W12S1, QKNR_PASS); }
extern "C" int qk_norm_rope_v1(QKNR_ARGS) { return run("v1", SHAPE_PAIRS, QKNR_PASS); }
extern "C" int qk_norm_rope_pipe(QKNR_ARGS) { return run("pipe", SHAPE_PIPE, QKNR_PASS); }
