// gemv, optimized for decode (M = 1..16): the op is one pass over W (N*K*2 bytes), so everything serves DRAM
// bandwidth: keep enough 16-byte W loads in flight on every SM, from the first microsecond to the last.
// This file holds the candidate kernels that op.c registers as variants (gemv.h lists them) and
// gemv_optimized, which dispatches per M to the one expected to win:
//   - v3 (the previous optimized): split-K CUDA-core kernel for M = 1, x-as-A mma.sync kernel for M >= 2.
//   - cc / cc_xs: CUDA cores, a warp per row of W, persistent grid sized to the SMs, and each warp's next
//     stage of W loaded into a second register buffer before the current one is used (two stages in flight).
//   - mma / mma_pf: tensor cores with 16 rows of W as the A operand (each mma consumes 512 bytes of W),
//     the K of a 16-row tile split over the 8 warps of a block, persistent grid, same two-stage prefetch.
// Rows not made of whole 16-byte vectors (K % 8 != 0, unaligned pointers) use the scalar warp-per-row kernel
// in gemv_optimized; the candidates reject them. docs/ops/gemv.md records each step and what it bought.
#include <cuda_bf16.h>
#include <stdint.h>
#include "kernels/gemm/gemm.h"
#include "kernels/gemv/gemv.h"
#include "kernels/common/launch.cuh"

// ================================ v3 kernels (the previous optimized) ================================
static __device__ __forceinline__ float dot8(const uint4 &a, const uint4 &b) {
  const __nv_bfloat162 *ha = reinterpret_cast<const __nv_bfloat162 *>(&a);
  const __nv_bfloat162 *hb = reinterpret_cast<const __nv_bfloat162 *>(&b);
  float s = 0.f;
#pragma unroll
  for (int i = 0; i < 4; i++) {
    float2 fa = __bfloat1622float2(ha[i]), fb = __bfloat1622float2(hb[i]);
    s = fmaf(fa.x, fb.x, s);
    s = fmaf(fa.y, fb.y, s);
  }
  return s;
}

// M = 1: a block of 8 warps owns 8/WPR rows; the WPR warps of a row split its K, so every lane issues all
// of its (up to UNROLL) 16-byte loads before the first use: one DRAM round trip per row slice instead of
// a chain of them. Partial sums meet in shared memory.
template <int WPR, int UNROLL>
__global__ void __launch_bounds__(256)
gemv_m1_kernel(const uint4 *__restrict__ x, const uint4 *__restrict__ W, __nv_bfloat16 *__restrict__ y, int N, int K8) {
  constexpr int ROWS = 8 / WPR;
  __shared__ float partial[8];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int row_in_block = warp / WPR, slice = warp % WPR;
  const int n = blockIdx.x * ROWS + row_in_block;
  const int per_slice = (K8 + WPR - 1) / WPR;
  const int k_begin = slice * per_slice, k_end = min(K8, k_begin + per_slice);
  float acc = 0.f;
  bool entered = false;  // klab_pdl_enter once, after this thread's first W loads are issued (W is read-only)
  if (n < N) {
    const uint4 *wr = W + (int64_t)n * K8;
    for (int k0 = k_begin + lane; k0 < k_end; k0 += 32 * UNROLL) {
      uint4 wv[UNROLL];
#pragma unroll
      for (int u = 0; u < UNROLL; u++)
        if (k0 + u * 32 < k_end) wv[u] = __ldcs(wr + k0 + u * 32);
      if (!entered) klab_pdl_enter(), entered = true;
#pragma unroll
      for (int u = 0; u < UNROLL; u++)
        if (k0 + u * 32 < k_end) acc += dot8(__ldg(x + k0 + u * 32), wv[u]);
    }
  }
  if (!entered) klab_pdl_enter();
#pragma unroll
  for (int o = 16; o > 0; o /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, o);
  if (WPR == 1) {
    if (lane == 0 && n < N) y[n] = __float2bfloat16(acc);
    return;
  }
  if (lane == 0) partial[warp] = acc;
  __syncthreads();
  if (slice == 0 && lane == 0 && n < N) {
    float s = 0.f;
#pragma unroll
    for (int i = 0; i < WPR; i++) s += partial[row_in_block * WPR + i];
    y[n] = __float2bfloat16(s);
  }
}

// M = 2..16 on tensor cores: mma.sync m16n8k16 (bf16 in, fp32 accumulate) with x as A (rows >= M are
// zero) and 8 rows of W as B. A dot product does not care about the order of k, so k is permuted inside
// each 32-wide chunk: lane (g = lane/4, q = lane%4) loads W[n0+g][32c + 8q .. 8q+7] and x[g|g+8][same] as
// single 16-byte vectors, and those 8 values serve as its fragments of two mma k-steps. That keeps every
// load 16 bytes wide and removes the FMA-throughput ceiling of the CUDA-core version at M >= 4.
static __device__ __forceinline__ void mma_bf16_16816(float c[4], unsigned a0, unsigned a1, unsigned a2, unsigned a3, unsigned b0, unsigned b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

template <int WPR, int UNROLL>
__global__ void __launch_bounds__(256)
gemv_mma_kernel(const uint4 *__restrict__ x, const uint4 *__restrict__ W, __nv_bfloat16 *__restrict__ y, int M, int N, int K8) {
  constexpr int GROUPS = 8 / WPR;  // row groups of 8 per block
  __shared__ float partial[8][32][4];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int g = lane / 4, q = lane % 4;
  const int group = warp / WPR, slice = warp % WPR;
  const int n0 = (blockIdx.x * GROUPS + group) * 8;
  const int chunks = (K8 + 3) / 4;  // 32-wide k chunks (4 vectors)
  const int per_slice = (chunks + WPR - 1) / WPR;
  const int c_begin = slice * per_slice, c_end = min(chunks, c_begin + per_slice);
  const bool w_ok = n0 + g < N;
  const uint4 *wr = W + (int64_t)(w_ok ? n0 + g : 0) * K8;
  const uint4 *xa = x + (int64_t)g * K8, *xb = x + (int64_t)(g + 8) * K8;
  const bool a_ok = g < M, b_ok = g + 8 < M;
  const uint4 zero = make_uint4(0, 0, 0, 0);
  float c[4] = {0.f, 0.f, 0.f, 0.f};
  for (int c0 = c_begin; c0 < c_end; c0 += UNROLL) {
    uint4 wv[UNROLL];
#pragma unroll
    for (int u = 0; u < UNROLL; u++) {
      const int v = (c0 + u) * 4 + q;
      wv[u] = (w_ok && c0 + u < c_end && v < K8) ? __ldcs(wr + v) : zero;
    }
#pragma unroll
    for (int u = 0; u < UNROLL; u++) {
      const int v = (c0 + u) * 4 + q;
      const bool in = c0 + u < c_end && v < K8;
      const uint4 va = (a_ok && in) ? __ldg(xa + v) : zero;
      const uint4 vb = (b_ok && in) ? __ldg(xb + v) : zero;
      mma_bf16_16816(c, va.x, vb.x, va.y, vb.y, wv[u].x, wv[u].y);
      mma_bf16_16816(c, va.z, vb.z, va.w, vb.w, wv[u].z, wv[u].w);
    }
  }
  if (WPR > 1) {
#pragma unroll
    for (int i = 0; i < 4; i++) partial[warp][lane][i] = c[i];
    __syncthreads();
    if (slice != 0) return;
    for (int s = 1; s < WPR; s++)
#pragma unroll
      for (int i = 0; i < 4; i++) c[i] += partial[warp + s][lane][i];
  }
  // c0,c1: row g, columns 2q, 2q+1; c2,c3: row g+8, same columns.
  const int n = n0 + 2 * q;
  if (g < M) {
    if (n < N) y[(int64_t)g * N + n] = __float2bfloat16(c[0]);
    if (n + 1 < N) y[(int64_t)g * N + n + 1] = __float2bfloat16(c[1]);
  }
  if (g + 8 < M) {
    if (n < N) y[(int64_t)(g + 8) * N + n] = __float2bfloat16(c[2]);
    if (n + 1 < N) y[(int64_t)(g + 8) * N + n + 1] = __float2bfloat16(c[3]);
  }
}

// Any K and alignment: a warp per (row n), lanes stride over K with scalar loads, all M rows of x at once.
__global__ void __launch_bounds__(256)
gemv_scalar_kernel(const __nv_bfloat16 *__restrict__ x, const __nv_bfloat16 *__restrict__ W, __nv_bfloat16 *__restrict__ y, int M, int N, int64_t K) {
  const int lane = threadIdx.x % 32;
  const int n = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  if (n >= N) return;
  float acc[KLAB_GEMV_MAX_M];
#pragma unroll
  for (int m = 0; m < KLAB_GEMV_MAX_M; m++) acc[m] = 0.f;
  const __nv_bfloat16 *wr = W + (int64_t)n * K;
  for (int64_t k = lane; k < K; k += 32) {
    float w = __bfloat162float(wr[k]);
#pragma unroll
    for (int m = 0; m < KLAB_GEMV_MAX_M; m++)
      if (m < M) acc[m] += w * __bfloat162float(x[m * K + k]);
  }
#pragma unroll
  for (int m = 0; m < KLAB_GEMV_MAX_M; m++) {
    if (m >= M) break;
    float v = acc[m];
#pragma unroll
    for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (lane == 0) y[(int64_t)m * N + n] = __float2bfloat16(v);
  }
}


// ===================================== round-4 streaming kernels =====================================
// bf16 -> fp32 is exact: the bf16 bits are the high half of the float.
static __device__ __forceinline__ float bf16_lo(unsigned u) { return __uint_as_float(u << 16); }
static __device__ __forceinline__ float bf16_hi(unsigned u) { return __uint_as_float(u & 0xffff0000u); }

// One 16-byte load of streamed W. W is read once: L1::no_allocate keeps it from evicting x (which every warp
// of the SM reuses) from L1; .nc because W is read-only for the kernel's lifetime. PREFETCH_L2 adds the
// L2::256B hint: the first load that touches a 256-byte block makes L2 fetch all of it from DRAM, so the
// next loads of that block (the same rows' following k) hit L2. The predicate lives inside the asm: a false
// one gives zeros and touches no memory, so a stage's loads issue back to back without branches, and
// `volatile` keeps them ahead of the arithmetic on the previous stage.
template <bool PREFETCH_L2>
static __device__ __forceinline__ uint4 load_w(const uint4 *p, bool ok) {
  uint4 r;
  if (PREFETCH_L2)
    asm volatile(
        "{\n\t.reg .pred p;\n\tsetp.ne.b32 p, %5, 0;\n\t"
        "mov.b32 %0, 0;\n\tmov.b32 %1, 0;\n\tmov.b32 %2, 0;\n\tmov.b32 %3, 0;\n\t"
        "@p ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0, %1, %2, %3}, [%4];\n\t}"
        : "=&r"(r.x), "=&r"(r.y), "=&r"(r.z), "=&r"(r.w)
        : "l"(p), "r"((int)ok));
  else
    asm volatile(
        "{\n\t.reg .pred p;\n\tsetp.ne.b32 p, %5, 0;\n\t"
        "mov.b32 %0, 0;\n\tmov.b32 %1, 0;\n\tmov.b32 %2, 0;\n\tmov.b32 %3, 0;\n\t"
        "@p ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];\n\t}"
        : "=&r"(r.x), "=&r"(r.y), "=&r"(r.z), "=&r"(r.w)
        : "l"(p), "r"((int)ok));
  return r;
}

// ---- cc: CUDA cores, M = 1..4 ------------------------------------------------------------------------
// Warp gw of TW = gridDim.x*8 owns rows gw, gw+TW, gw+2TW, ... (at any moment the grid reads a contiguous
// band of W). A row is read in stages of V vectors per lane (stage t, lane l, u < V: vector t*32V + 32u + l,
// i.e. each load instruction reads 512 contiguous bytes). The warp's sequence of (row, stage) steps is
// walked with two register buffers: the loads of step s+1 are issued before step s is used, so two stages
// (2 * V * 512 bytes) per warp are in flight; the buffers swap roles explicitly (two steps per loop trip),
// because a register copy `cur = next` would wait for next's loads and leave one stage in flight.

template <int V>
static __device__ __forceinline__ void cc_load(uint4 (&buf)[V], const uint4 *__restrict__ wrow, int K8, int stage, int lane) {
  const int base = stage * 32 * V + lane;
#pragma unroll
  for (int u = 0; u < V; u++) {
    const int v = base + 32 * u;
    buf[u] = load_w<false>(wrow + min(v, K8 - 1), v < K8);
  }
}

template <int MT, int V, bool XS>
static __device__ __forceinline__ void cc_use(const uint4 (&buf)[V], const uint4 *__restrict__ xsrc, int K8, int stage, int lane,
                                              float (&acc)[MT]) {
  const int base = stage * 32 * V + lane;
#pragma unroll
  for (int u = 0; u < V; u++) {
    const int v = base + 32 * u;
    if (v >= K8) continue;
    const unsigned w[4] = {buf[u].x, buf[u].y, buf[u].z, buf[u].w};
    float wf[8];
#pragma unroll
    for (int i = 0; i < 4; i++) wf[2 * i] = bf16_lo(w[i]), wf[2 * i + 1] = bf16_hi(w[i]);
#pragma unroll
    for (int m = 0; m < MT; m++) {
      const uint4 xv = XS ? xsrc[m * K8 + v] : __ldg(xsrc + (int64_t)m * K8 + v);
      const unsigned xw[4] = {xv.x, xv.y, xv.z, xv.w};
      float s = acc[m];
#pragma unroll
      for (int i = 0; i < 4; i++) {
        s = fmaf(bf16_lo(xw[i]), wf[2 * i], s);
        s = fmaf(bf16_hi(xw[i]), wf[2 * i + 1], s);
      }
      acc[m] = s;
    }
  }
}

template <int MT>
static __device__ __forceinline__ void cc_finish(float (&acc)[MT], __nv_bfloat16 *__restrict__ y, int N, int n, int lane) {
#pragma unroll
  for (int m = 0; m < MT; m++) {
    float s = acc[m];
#pragma unroll
    for (int o = 16; o > 0; o /= 2) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (lane == 0) y[(int64_t)m * N + n] = __float2bfloat16(s);
    acc[m] = 0.f;
  }
}

// One step of the walk: prefetch the step after (row, stage) into `next`, use `cur`, finish the row at its
// last stage, advance. Returns 0 when the warp has no rows left.
template <int MT, int V, bool XS>
static __device__ __forceinline__ int cc_step(const uint4 (&cur)[V], uint4 (&next)[V], const uint4 *__restrict__ W,
                                              const uint4 *__restrict__ xsrc, __nv_bfloat16 *__restrict__ y, int N, int K8,
                                              int stages, int gw, int tw, int my_rows, int lane, int &row, int &stage,
                                              float (&acc)[MT]) {
  int next_row = row, next_stage = stage + 1;
  if (next_stage == stages) next_row++, next_stage = 0;
  if (next_row < my_rows) cc_load<V>(next, W + (int64_t)(gw + next_row * tw) * K8, K8, next_stage, lane);
  cc_use<MT, V, XS>(cur, xsrc, K8, stage, lane, acc);
  if (stage == stages - 1) cc_finish<MT>(acc, y, N, gw + row * tw, lane);
  row = next_row, stage = next_stage;
  return row < my_rows;
}

// XS: x (MT*K8 vectors) is staged once per block in shared memory (dynamic, <= 48 KiB), after the block's
// first W loads are in flight; otherwise x is read through L1 with __ldg.
template <int MT, int V, bool XS, int BLOCKS_PER_SM>
__global__ void __launch_bounds__(256, BLOCKS_PER_SM)
gemv_cc_kernel(const uint4 *__restrict__ x, const uint4 *__restrict__ W, __nv_bfloat16 *__restrict__ y, int N, int K8) {
  extern __shared__ uint4 x_smem[];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int gw = blockIdx.x * 8 + warp, tw = gridDim.x * 8;
  const int stages = (K8 + 32 * V - 1) / (32 * V);
  const int my_rows = gw < N ? (N - 1 - gw) / tw + 1 : 0;
  uint4 buf_a[V], buf_b[V];
  if (my_rows > 0) cc_load<V>(buf_a, W + (int64_t)gw * K8, K8, 0, lane);
  klab_pdl_enter();  // the first stage of (read-only) W is in flight before we wait for x
  if (XS) {
    for (int i = threadIdx.x; i < MT * K8; i += blockDim.x) x_smem[i] = __ldg(x + i);
    __syncthreads();  // every thread reaches it: no thread has left yet
  }
  const uint4 *xsrc = XS ? x_smem : x;
  float acc[MT];
#pragma unroll
  for (int m = 0; m < MT; m++) acc[m] = 0.f;
  int row = 0, stage = 0;
  while (row < my_rows) {
    if (!cc_step<MT, V, XS>(buf_a, buf_b, W, xsrc, y, N, K8, stages, gw, tw, my_rows, lane, row, stage, acc)) break;
    if (!cc_step<MT, V, XS>(buf_b, buf_a, W, xsrc, y, N, K8, stages, gw, tw, my_rows, lane, row, stage, acc)) break;
  }
}

// ---- mma: tensor cores, M = 1..16 -----------------------------------------------------------------------
// mma.sync m16n8k16 (bf16 in, fp32 accumulate) with 16 rows of W as A and x as B (columns = rows of x;
// T = 1 n-tile for M <= 8, 2 for M <= 16). A dot product does not care about the order of k, so k is
// permuted inside each 32-wide chunk: lane (g = lane/4, q = lane%4) loads W[r][32c + 8q .. 8q+7] for rows
// r = n0+g and n0+g+8 and x[m][same 8 k] for m = g (+8), each one 16-byte vector, and elements 0-3 / 4-7 of
// those vectors are its fragments of two k16 steps (logical k 2q,2q+1,2q+8,2q+9 of step s = physical
// 8q+4s+0..3, the same map for A and B). Each mma so consumes 512 bytes of W.
// A block (8 warps) owns one 16-row tile at a time (tiles blockIdx.x, +gridDim.x, ...); its warps split K by
// stages: at stage t warp w holds chunks (8t + w)*P .. +P-1, so the block reads 8P contiguous chunks of each
// row per stage and x is read through a small window that stays in L1. The 8 partial tiles meet in shared
// memory once per tile. Steps (tile, stage) are walked with two register buffers as in cc.

static __device__ __forceinline__ void mma_bf16_16816_acc(float (&c)[4], unsigned a0, unsigned a1, unsigned a2, unsigned a3,
                                                          unsigned b0, unsigned b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

template <int P, bool PF>
static __device__ __forceinline__ void mma_load(uint4 (&wa)[P], uint4 (&wb)[P], const uint4 *__restrict__ W, int N, int K8,
                                                int tile, int stage, int warp, int g, int q) {
  const int r0 = tile * 16 + g, r1 = r0 + 8;
  // Rows past N are never loaded (predicate false); clamping keeps even their address inside W.
  const uint4 *w0 = W + (int64_t)min(r0, N - 1) * K8, *w1 = W + (int64_t)min(r1, N - 1) * K8;
  const int chunk0 = (stage * 8 + warp) * P;
#pragma unroll
  for (int p = 0; p < P; p++) {
    const int v = (chunk0 + p) * 4 + q, vc = min(v, K8 - 1);
    wa[p] = load_w<PF>(w0 + vc, v < K8 && r0 < N);
    wb[p] = load_w<PF>(w1 + vc, v < K8 && r1 < N);
  }
}

// x: global memory (read through L1, row stride K8 vectors) or, XS, the block's copy in shared memory with
// rows padded to K8 + 1 vectors (rows g and g+1 read by one quarter-warp then fall in different banks).
template <int T, int P, bool XS>
static __device__ __forceinline__ void mma_use(const uint4 (&wa)[P], const uint4 (&wb)[P], const uint4 *__restrict__ x, int M, int K8,
                                               int stage, int warp, int g, int q, float (&acc)[T][2][4]) {
  const int x_stride = XS ? K8 + 1 : K8;
  const int chunk0 = (stage * 8 + warp) * P;
  const uint4 zero = make_uint4(0u, 0u, 0u, 0u);
#pragma unroll
  for (int p = 0; p < P; p++) {
    const int v = (chunk0 + p) * 4 + q;
#pragma unroll
    for (int t = 0; t < T; t++) {
      const int m = 8 * t + g;
      // Out-of-range k or m: zeros (W past K8 is zero too), so the product adds nothing.
      uint4 xv = zero;
      if (v < K8 && m < M) xv = XS ? x[m * x_stride + v] : __ldg(x + (int64_t)m * x_stride + v);
      // Two independent accumulators (one per k16 step) halve the chain of dependent mma.
      mma_bf16_16816_acc(acc[t][0], wa[p].x, wb[p].x, wa[p].y, wb[p].y, xv.x, xv.y);
      mma_bf16_16816_acc(acc[t][1], wa[p].z, wb[p].z, wa[p].w, wb[p].w, xv.z, xv.w);
    }
  }
}

// End of a tile: the 8 warps' partial 16 x 8T tiles meet in shared memory (two buffers by tile parity, so a
// single barrier per tile suffices: a warp can only overwrite buffer `parity` again after the next tile's
// barrier, which warp 0 reaches only after it has read this one), then warp 0 sums and stores.
// C fragment: c0,c1 = (row g, columns 2q, 2q+1), c2,c3 = (row g+8, same columns); rows are rows of W (n),
// columns rows of x (m).
template <int T>
static __device__ __forceinline__ void mma_finish(float (&acc)[T][2][4], float4 (*partial)[8][32][T], int parity, int warp, int lane,
                                                  int g, int q, int tile, int M, int N, __nv_bfloat16 *__restrict__ y) {
#pragma unroll
  for (int t = 0; t < T; t++) {
    partial[parity][warp][lane][t] = make_float4(acc[t][0][0] + acc[t][1][0], acc[t][0][1] + acc[t][1][1],
                                                 acc[t][0][2] + acc[t][1][2], acc[t][0][3] + acc[t][1][3]);
#pragma unroll
    for (int h = 0; h < 2; h++)
#pragma unroll
      for (int i = 0; i < 4; i++) acc[t][h][i] = 0.f;
  }
  __syncthreads();
  if (warp != 0) return;
  const int r0 = tile * 16 + g, r1 = r0 + 8;
#pragma unroll
  for (int t = 0; t < T; t++) {
    float4 s = partial[parity][0][lane][t];
#pragma unroll
    for (int w = 1; w < 8; w++) {
      const float4 o = partial[parity][w][lane][t];
      s.x += o.x, s.y += o.y, s.z += o.z, s.w += o.w;
    }
    const int m0 = 8 * t + 2 * q, m1 = m0 + 1;
    if (m0 < M && r0 < N) y[(int64_t)m0 * N + r0] = __float2bfloat16(s.x);
    if (m1 < M && r0 < N) y[(int64_t)m1 * N + r0] = __float2bfloat16(s.y);
    if (m0 < M && r1 < N) y[(int64_t)m0 * N + r1] = __float2bfloat16(s.z);
    if (m1 < M && r1 < N) y[(int64_t)m1 * N + r1] = __float2bfloat16(s.w);
  }
}

template <int T, int P, bool PF, bool XS>
static __device__ __forceinline__ int mma_step(const uint4 (&cur_a)[P], const uint4 (&cur_b)[P], uint4 (&next_a)[P], uint4 (&next_b)[P],
                                               const uint4 *__restrict__ x, const uint4 *__restrict__ W, __nv_bfloat16 *__restrict__ y,
                                               int M, int N, int K8, int stages, int my_tiles, int warp, int lane, int g, int q,
                                               float4 (*partial)[8][32][T], int &parity, int &i, int &stage, float (&acc)[T][2][4]) {
  int next_i = i, next_stage = stage + 1;
  if (next_stage == stages) next_i++, next_stage = 0;
  if (next_i < my_tiles) mma_load<P, PF>(next_a, next_b, W, N, K8, blockIdx.x + next_i * gridDim.x, next_stage, warp, g, q);
  mma_use<T, P, XS>(cur_a, cur_b, x, M, K8, stage, warp, g, q, acc);
  if (stage == stages - 1) {
    mma_finish<T>(acc, partial, parity, warp, lane, g, q, blockIdx.x + i * gridDim.x, M, N, y);
    parity ^= 1;
  }
  i = next_i, stage = next_stage;
  return i < my_tiles;
}

// XS: x staged once per block in shared memory (dynamic, M * (K8 + 1) vectors <= 48 KiB), after the block's
// first W loads are in flight.
template <int T, int P, bool PF, bool XS, int BLOCKS_PER_SM>
__global__ void __launch_bounds__(256, BLOCKS_PER_SM)
gemv_mma_stream_kernel(const uint4 *__restrict__ x, const uint4 *__restrict__ W, __nv_bfloat16 *__restrict__ y, int M, int N, int K8) {
  __shared__ float4 partial[2][8][32][T];  // 8 KiB * T: KLAB_GEMV_MMA_XS_MAX_BYTES leaves room for it
  static_assert(sizeof(partial) == 8192 * T, "gemv.h's KLAB_GEMV_MMA_XS_MAX_BYTES assumes 8 KiB of partial sums per n-tile");
  extern __shared__ uint4 x_smem[];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int g = lane / 4, q = lane % 4;
  const int tiles = (N + 15) / 16;
  const int chunks = (K8 + 3) / 4;  // 32-wide k chunks
  const int stages = (chunks + 8 * P - 1) / (8 * P);
  // Block-uniform (tile count and stages), so every warp of the block meets the same barriers.
  const int my_tiles = (int)blockIdx.x < tiles ? (tiles - 1 - (int)blockIdx.x) / (int)gridDim.x + 1 : 0;
  uint4 a0[P], b0[P], a1[P], b1[P];
  float acc[T][2][4];
#pragma unroll
  for (int t = 0; t < T; t++)
#pragma unroll
    for (int h = 0; h < 2; h++)
#pragma unroll
      for (int i = 0; i < 4; i++) acc[t][h][i] = 0.f;
  if (my_tiles > 0) mma_load<P, PF>(a0, b0, W, N, K8, blockIdx.x, 0, warp, g, q);
  klab_pdl_enter();  // the first stage of (read-only) W is in flight before we wait for x
  if (XS) {
    for (int j = threadIdx.x; j < M * K8; j += blockDim.x) x_smem[(j / K8) * (K8 + 1) + j % K8] = __ldg(x + j);
    __syncthreads();  // every thread reaches it: no thread has left yet
  }
  const uint4 *xsrc = XS ? x_smem : x;
  int i = 0, stage = 0, parity = 0;
  while (i < my_tiles) {
    if (!mma_step<T, P, PF, XS>(a0, b0, a1, b1, xsrc, W, y, M, N, K8, stages, my_tiles, warp, lane, g, q, partial, parity, i, stage, acc)) break;
    if (!mma_step<T, P, PF, XS>(a1, b1, a0, b0, xsrc, W, y, M, N, K8, stages, my_tiles, warp, lane, g, q, partial, parity, i, stage, acc)) break;
  }
}
template <int WPR>
static int launch_m1(const uint16_t *x, const uint16_t *W, uint16_t *y, int N, int K8, cudaStream_t stream, klab_err *err) {
  constexpr int ROWS = 8 / WPR;
  KLAB_LAUNCH(err, "gemv v3 (M=1)", (unsigned)((N + ROWS - 1) / ROWS), 256, 0, stream, gemv_m1_kernel<WPR, 8>, (const uint4 *)x,
              (const uint4 *)W, (__nv_bfloat16 *)y, N, K8);
  return 0;
}

template <int WPR>
static int launch_mma(const uint16_t *x, const uint16_t *W, uint16_t *y, int M, int N, int K8, cudaStream_t stream, klab_err *err) {
  constexpr int ROWS = 8 * (8 / WPR);
  gemv_mma_kernel<WPR, 8><<<(unsigned)((N + ROWS - 1) / ROWS), 256, 0, stream>>>((const uint4 *)x, (const uint4 *)W, (__nv_bfloat16 *)y, M, N, K8);
  KLAB_CHECK_LAUNCH(err, "gemv v3 (tensor cores)");
  return 0;
}

extern "C" int gemv_v3(const uint16_t *x, const uint16_t *W, uint16_t *y, int64_t M, int64_t N, int64_t K,
                              cudaStream_t stream, klab_err *err) {
  if (M < 1 || M > KLAB_GEMV_MAX_M || N < 1 || K < 1)
    return klab_fail(err, "gemv v3: unsupported shape M=%lld N=%lld K=%lld (M must be 1..%d)", (long long)M, (long long)N, (long long)K, KLAB_GEMV_MAX_M);
  if (N > 2147483647LL / 8 || K > 2147483647LL) return klab_fail(err, "gemv v3: N=%lld or K=%lld too large", (long long)N, (long long)K);
  const int aligned = ((uintptr_t)x % 16 == 0) && ((uintptr_t)W % 16 == 0);
  if (K % 8 != 0 || !aligned) {
    gemv_scalar_kernel<<<(unsigned)((N + 7) / 8), 256, 0, stream>>>((const __nv_bfloat16 *)x, (const __nv_bfloat16 *)W, (__nv_bfloat16 *)y, (int)M, (int)N, K);
    KLAB_CHECK_LAUNCH(err, "gemv v3 (scalar path)");
    return 0;
  }
  const int n = (int)N, k8 = (int)(K / 8);
  if (M == 1) {
    // Warps per row: the fewest that leave each lane at most 8 vectors (all loads issued at once).
    if (k8 <= 256) return launch_m1<1>(x, W, y, n, k8, stream, err);
    if (k8 <= 512) return launch_m1<2>(x, W, y, n, k8, stream, err);
    if (k8 <= 1024) return launch_m1<4>(x, W, y, n, k8, stream, err);
    return launch_m1<8>(x, W, y, n, k8, stream, err);
  }
  // Warps per 8-row group: the fewest that leave each warp at most 16 chunks of 32 k (2 rounds of 8).
  const int chunks = (k8 + 3) / 4;
  if (chunks <= 16) return launch_mma<1>(x, W, y, (int)M, n, k8, stream, err);
  if (chunks <= 32) return launch_mma<2>(x, W, y, (int)M, n, k8, stream, err);
  if (chunks <= 64) return launch_mma<4>(x, W, y, (int)M, n, k8, stream, err);
  return launch_mma<8>(x, W, y, (int)M, n, k8, stream, err);
}

// ===================================== round-4 launchers =====================================

// Arguments every candidate needs: shape in range, whole 16-byte rows, aligned x and W.
static int check_vector_args(const char *name, const uint16_t *x, const uint16_t *W, int64_t M, int64_t N, int64_t K, int max_m, klab_err *err) {
  if (M < 1 || M > max_m || N < 1 || K < 1)
    return klab_fail(err, "gemv %s: unsupported shape M=%lld N=%lld K=%lld (M must be 1..%d)", name, (long long)M, (long long)N, (long long)K, max_m);
  if (N > 2147483647LL / 8 || K > 2147483647LL)
    return klab_fail(err, "gemv %s: N=%lld or K=%lld too large", name, (long long)N, (long long)K);
  if (K % 8 != 0)
    return klab_fail(err, "gemv %s: K=%lld is not a multiple of 8 (rows must be whole 16-byte vectors; gemv_optimized handles it)", name, (long long)K);
  if ((uintptr_t)x % 16 != 0 || (uintptr_t)W % 16 != 0)
    return klab_fail(err, "gemv %s: x (%p) and W (%p) must be 16-byte aligned (M=%lld N=%lld K=%lld)", name, (const void *)x, (const void *)W, (long long)M, (long long)N, (long long)K);
  return 0;
}

static int sm_count(const char *name, int *sms, klab_err *err) {
  int dev = 0;
  KLAB_CUDA(err, cudaGetDevice(&dev), name);
  KLAB_CUDA(err, cudaDeviceGetAttribute(sms, cudaDevAttrMultiProcessorCount, dev), name);
  if (*sms < 1) return klab_fail(err, "%s: device reports %d SMs", name, *sms);
  return 0;
}

// Persistent grids: `items` work items over at most sms*blocks_per_sm*per_block slots, spread evenly: each
// slot gets ceil(items / slots) or one fewer, and no slot is left with a second, partial round.
static unsigned even_grid(int64_t items, int sms, int blocks_per_sm, int per_block) {
  const int64_t slots = (int64_t)sms * blocks_per_sm * per_block;
  const int64_t per_slot = (items + slots - 1) / slots;
  const int64_t used = (items + per_slot - 1) / per_slot;
  return (unsigned)((used + per_block - 1) / per_block);
}

// Padding waste of covering `n` with stages of `v`.
static int64_t stage_waste(int64_t n, int v) { return (n + v - 1) / v * v - n; }

// Stage width: the widest candidate that wastes at most 1/8 of a row's (or warp's) vectors on the last,
// partly empty stage; else the one that wastes least (wider on ties). Wider stages = more bytes in flight.
static int pick_stage(int64_t per_lane, const int *widths, int nwidths) {
  for (int i = 0; i < nwidths; i++)
    if (stage_waste(per_lane, widths[i]) * 8 <= per_lane) return widths[i];
  int best = widths[0];
  for (int i = 1; i < nwidths; i++)
    if (stage_waste(per_lane, widths[i]) < stage_waste(per_lane, best)) best = widths[i];
  return best;
}

template <int MT, int V, bool XS, int BPS>
static int launch_cc_mv(const char *name, const uint16_t *x, const uint16_t *W, uint16_t *y, int N, int K8, int sms, cudaStream_t stream, klab_err *err) {
  const unsigned grid = even_grid(N, sms, BPS, 8);
  const size_t smem = XS ? (size_t)MT * K8 * 16 : 0;
  KLAB_LAUNCH(err, name, grid, 256, smem, stream, gemv_cc_kernel<MT, V, XS, BPS>, (const uint4 *)x, (const uint4 *)W, (__nv_bfloat16 *)y, N, K8);
  return 0;
}

template <int MT, bool XS, int BPS>
static int launch_cc_m(const char *name, int V, const uint16_t *x, const uint16_t *W, uint16_t *y, int N, int K8, int sms, cudaStream_t stream, klab_err *err) {
  switch (V) {
    case 4: return launch_cc_mv<MT, 4, XS, BPS>(name, x, W, y, N, K8, sms, stream, err);
    case 6: return launch_cc_mv<MT, 6, XS, BPS>(name, x, W, y, N, K8, sms, stream, err);
    case 8: return launch_cc_mv<MT, 8, XS, BPS>(name, x, W, y, N, K8, sms, stream, err);
  }
  return klab_fail(err, "%s: no kernel for %d vectors per stage", name, V);
}

// cc family. b4: 4 blocks of 256 threads per SM (64 registers each), stages of 4 vectors.
template <bool XS, bool B4>
static int run_cc(const char *name, const uint16_t *x, const uint16_t *W, uint16_t *y, int64_t M, int64_t N, int64_t K, cudaStream_t stream, klab_err *err) {
  const int max_m = B4 ? KLAB_GEMV_CC_B4_MAX_M : KLAB_GEMV_CC_MAX_M;
  if (check_vector_args(name, x, W, M, N, K, max_m, err)) return -1;
  if (XS && M * K * 2 > KLAB_GEMV_XS_MAX_BYTES)
    return klab_fail(err, "gemv %s: x is M*K*2 = %lld bytes, more than the %d bytes of shared memory it stages (M=%lld N=%lld K=%lld)", name,
                     (long long)(M * K * 2), KLAB_GEMV_XS_MAX_BYTES, (long long)M, (long long)N, (long long)K);
  int sms;
  if (sm_count(name, &sms, err)) return -1;
  const int n = (int)N, k8 = (int)(K / 8);
  if constexpr (B4) {
    if (M == 1) return launch_cc_mv<1, 4, XS, 4>(name, x, W, y, n, k8, sms, stream, err);
    return launch_cc_mv<2, 4, XS, 4>(name, x, W, y, n, k8, sms, stream, err);
  } else {
    static const int widths[] = {8, 6, 4};
    const int V = pick_stage((k8 + 31) / 32, widths, 3);
    switch (M) {
      case 1: return launch_cc_m<1, XS, 2>(name, V, x, W, y, n, k8, sms, stream, err);
      case 2: return launch_cc_m<2, XS, 2>(name, V, x, W, y, n, k8, sms, stream, err);
      case 3: return launch_cc_m<3, XS, 2>(name, V, x, W, y, n, k8, sms, stream, err);
      default: return launch_cc_m<4, XS, 2>(name, V, x, W, y, n, k8, sms, stream, err);
    }
  }
}

template <int T, int P, bool PF, bool XS>
static int launch_mma_tp(const char *name, const uint16_t *x, const uint16_t *W, uint16_t *y, int M, int N, int K8, int sms, cudaStream_t stream, klab_err *err) {
  const unsigned grid = even_grid((N + 15) / 16, sms, 2, 1);
  const size_t smem = XS ? (size_t)M * (K8 + 1) * 16 : 0;
  KLAB_LAUNCH(err, name, grid, 256, smem, stream, gemv_mma_stream_kernel<T, P, PF, XS, 2>, (const uint4 *)x, (const uint4 *)W,
              (__nv_bfloat16 *)y, M, N, K8);
  return 0;
}

// mma family: T n-tiles of 8 rows of x; P chunks of 32 k per warp and stage (5 only for T = 1: registers).
template <bool PF, bool XS>
static int run_mma(const char *name, const uint16_t *x, const uint16_t *W, uint16_t *y, int64_t M, int64_t N, int64_t K, cudaStream_t stream, klab_err *err) {
  if (check_vector_args(name, x, W, M, N, K, KLAB_GEMV_MAX_M, err)) return -1;
  if (XS && M * (K / 8 + 1) * 16 > KLAB_GEMV_MMA_XS_MAX_BYTES(M))
    return klab_fail(err, "gemv %s: x is M*(K+8)*2 = %lld bytes (rows padded), more than the %d bytes of shared memory it stages (M=%lld N=%lld K=%lld)",
                     name, (long long)(M * (K / 8 + 1) * 16), (int)KLAB_GEMV_MMA_XS_MAX_BYTES(M), (long long)M, (long long)N, (long long)K);
  int sms;
  if (sm_count(name, &sms, err)) return -1;
  const int m = (int)M, n = (int)N, k8 = (int)(K / 8);
  const int64_t chunks_per_warp = ((k8 + 3) / 4 + 7) / 8;
  static const int widths_t1[] = {5, 4, 2}, widths_t2[] = {4, 2};
  if (m <= 8) {
    switch (pick_stage(chunks_per_warp, widths_t1, 3)) {
      case 5: return launch_mma_tp<1, 5, PF, XS>(name, x, W, y, m, n, k8, sms, stream, err);
      case 4: return launch_mma_tp<1, 4, PF, XS>(name, x, W, y, m, n, k8, sms, stream, err);
      default: return launch_mma_tp<1, 2, PF, XS>(name, x, W, y, m, n, k8, sms, stream, err);
    }
  }
  if (pick_stage(chunks_per_warp, widths_t2, 2) == 4) return launch_mma_tp<2, 4, PF, XS>(name, x, W, y, m, n, k8, sms, stream, err);
  return launch_mma_tp<2, 2, PF, XS>(name, x, W, y, m, n, k8, sms, stream, err);
}

extern "C" int gemv_cc(const uint16_t *x, const uint16_t *W, uint16_t *y, int64_t M, int64_t N, int64_t K, cudaStream_t stream, klab_err *err) {
  return run_cc<false, false>("cc", x, W, y, M, N, K, stream, err);
}
extern "C" int gemv_cc_xs(const uint16_t *x, const uint16_t *W, uint16_t *y, int64_t M, int64_t N, int64_t K, cudaStream_t stream, klab_err *err) {
  return run_cc<true, false>("cc_xs", x, W, y, M, N, K, stream, err);
}
extern "C" int gemv_cc_xs_b4(const uint16_t *x, const uint16_t *W, uint16_t *y, int64_t M, int64_t N, int64_t K, cudaStream_t stream, klab_err *err) {
  return run_cc<true, true>("cc_xs_b4", x, W, y, M, N, K, stream, err);
}
extern "C" int gemv_mma(const uint16_t *x, const uint16_t *W, uint16_t *y, int64_t M, int64_t N, int64_t K, cudaStream_t stream, klab_err *err) {
  return run_mma<false, false>("mma", x, W, y, M, N, K, stream, err);
}
extern "C" int gemv_mma_xs(const uint16_t *x, const uint16_t *W, uint16_t *y, int64_t M, int64_t N, int64_t K, cudaStream_t stream, klab_err *err) {
  return run_mma<true, true>("mma_xs", x, W, y, M, N, K, stream, err);
}
extern "C" int gemv_mma_pf(const uint16_t *x, const uint16_t *W, uint16_t *y, int64_t M, int64_t N, int64_t K, cudaStream_t stream, klab_err *err) {
  return run_mma<true, false>("mma_pf", x, W, y, M, N, K, stream, err);
}

// The engine's and the winners' entry: any K and alignment. Best guess per M until the round-4 benchmark
// says otherwise (docs/ops/gemv.md): M = 1 on CUDA cores with x in shared memory where it fits, M >= 2 on
// tensor cores with the L2 prefetch hint.
extern "C" int gemv_optimized(const uint16_t *x, const uint16_t *W, uint16_t *y, int64_t M, int64_t N, int64_t K,
                              cudaStream_t stream, klab_err *err) {
  if (M < 1 || M > KLAB_GEMV_MAX_M || N < 1 || K < 1)
    return klab_fail(err, "gemv optimized: unsupported shape M=%lld N=%lld K=%lld (M must be 1..%d)", (long long)M, (long long)N, (long long)K, KLAB_GEMV_MAX_M);
  if (N > 2147483647LL / 8 || K > 2147483647LL) return klab_fail(err, "gemv optimized: N=%lld or K=%lld too large", (long long)N, (long long)K);
  const int aligned = ((uintptr_t)x % 16 == 0) && ((uintptr_t)W % 16 == 0);
  if (K % 8 != 0 || !aligned) {
    gemv_scalar_kernel<<<(unsigned)((N + 7) / 8), 256, 0, stream>>>((const __nv_bfloat16 *)x, (const __nv_bfloat16 *)W, (__nv_bfloat16 *)y, (int)M, (int)N, K);
    KLAB_CHECK_LAUNCH(err, "gemv optimized (scalar path)");
    return 0;
  }
  // Dispatch from the round-4 measurements (docs/ops/gemv.md, H100): at M = 1 the persistent tensor-core
  // kernel wins on the small square-ish matrices (4B o: 72.6% of the read ceiling vs v3's 60.5%; 8B o 83.1
  // vs 73.3) and v3 everywhere else (4B gate|up 94.0, down 83.6, lm_head 101.5); at M >= 2 see below.
  if (M == 1) {
    if (N <= 4096 && K <= 4096) return run_mma<true, false>("optimized (mma_pf)", x, W, y, M, N, K, stream, err);
    return gemv_v3(x, W, y, M, N, K, stream, err);
  }
  // M >= 2 (H100, commit aabedd1, 4B and 8B projections at M = 2..16, results/ops-h100-aabedd1/gemv-batched.csv):
  // x in shared memory wins only at K <= 2560 with N > 4096 (4B qkv, gate|up at M = 2, 4); at K >= 4096 mma_pf
  // is 2-7% faster (M=2 down 20.1 vs 21.6 us, M=4 8B qkv 19.1 vs 20.4 us).
  // On sm_90a the gemm kernel with the roles swapped (gemm_wgmma_skinny, 64-row tiles of W; docs/ops/gemv.md,
  // rounds 9 and 10) takes about the same time at every M, so it wins where the mma kernels slow down with M or
  // leave SMs idle. By the number of 64-row tiles against the SMs (132 on the H100):
  //  - at most 2/3 of a wave (N <= 3072; 4B o and down, 40 tiles) with K >= 4096: k-blocks split over 2-CTA
  //    clusters, at M >= 9, and from M = 4 at K >= 8192 (4B down M = 9..16 20.4-20.6 us against 22.0-22.8; o
  //    10.6-10.7 against 10.8-11.1; below that the mma kernels are ahead or level);
  //  - one wave filling more than half the SMs (4096 < N <= 64 x SMs; q|k|v, 96 tiles): the 10-stage ring, at
  //    every M >= 2 where K <= 3072 and from M = 9 at larger K (4B q|k|v 12.96-13.34 us at M = 2..16 against
  //    13.15-14.24; 8B q|k|v M = 9..16 19.5-19.6 against 21.1-21.3; at M <= 8 mma_pf is 1% ahead there);
  //  - more than a wave (gate|up) at M >= 9, K <= 3072: x resident in shared memory (round 9: 4B gate|up M = 16
  //    37.9 vs 38.5 us).
  // Elsewhere (8B o, gate|up and down; M <= 8 of the rest) the mma kernels below.
  char why[160];
  int sms = 0;
  if (M >= 2 && gemm_optimized_supports(N, M, K, why, sizeof why)) {
    if (sm_count("optimized", &sms, err)) return -1;
    const int64_t one_wave_n = (int64_t)KLAB_GEMM_SKINNY_TILE_ROWS * sms;  // rows of W in one tile per SM
    if (N <= 3072 && K >= 4096 && (M >= 9 || (M >= 4 && K >= 8192))) return gemm_wgmma_skinny(x, W, y, M, N, K, 0, 2, 16, stream, err);
    if (N > 4096 && N <= one_wave_n && (M >= 9 || K <= 3072)) return gemm_wgmma_skinny(x, W, y, M, N, K, 0, 1, 10, stream, err);
    if (N > one_wave_n && M >= 9 && K <= 3072) return gemm_wgmma_skinny(x, W, y, M, N, K, 1, 1, 16, stream, err);
  }
  if (K <= 3072 && N > 4096 && M * (K / 8 + 1) * 16 <= KLAB_GEMV_MMA_XS_MAX_BYTES(M)) return run_mma<true, true>("optimized (mma_xs)", x, W, y, M, N, K, stream, err);
  return run_mma<true, false>("optimized (mma_pf)", x, W, y, M, N, K, stream, err);
}
